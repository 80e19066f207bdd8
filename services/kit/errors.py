"""Domain errors and how they become gRPC statuses (and, at the gateway, HTTP statuses).

Domain code raises these and knows nothing of gRPC; `ErrorInterceptor` turns
them into a status with the same message. The gateway maps the status to HTTP:
INVALID_ARGUMENT 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404,
ALREADY_EXISTS 409 (also ABORTED), FAILED_PRECONDITION 400, RESOURCE_EXHAUSTED 429,
UNAVAILABLE 503. An outage of a store the call needs (PostgreSQL, Redis) is
UNAVAILABLE too: the request was fine, and a retry later may pass.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from redis import exceptions as redis_errors
from sqlalchemy import exc as sa_errors

from services.kit.interceptors import Around
from services.kit.redis_client import NotReplicated

_log = logging.getLogger(__name__)

#: Failures of the infrastructure rather than of the request or the message: a
#: consumer retries them until they pass and never dead-letters a message for them.
OUTAGES = (
    sa_errors.OperationalError,  # also serialization failures and deadlocks: try again
    sa_errors.InterfaceError,
    sa_errors.TimeoutError,  # the connection pool stayed exhausted
    ConnectionError,
    TimeoutError,
    redis_errors.ConnectionError,  # BusyLoadingError (a restart) among them
    redis_errors.TimeoutError,
    redis_errors.OutOfMemoryError,  # maxmemory reached: writes refused until memory frees
    redis_errors.ReadOnlyError,  # a replica, or a failover in progress
    redis_errors.TryAgainError,
    redis_errors.MasterDownError,
    NotReplicated,  # fewer replicas than asked for hold a write yet: a failover, a lagging one
)


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class DomainError(Exception):
    """A request the domain refuses; `message` is shown to the caller as it is."""

    code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, message: str, *, violations: tuple[FieldViolation, ...] = ()):
        super().__init__(message)
        self.message = message
        self.violations = violations

    def status_details(self) -> bytes | None:
        """`grpc-status-details-bin`: a google.rpc.Status carrying a BadRequest, if any."""
        if not self.violations:
            return None
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in self.violations
            ]
        )
        detail = any_pb2.Any()
        detail.Pack(bad_request)
        status = status_pb2.Status(code=self.code.value[0], message=self.message, details=[detail])
        return status.SerializeToString()


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        """One bad field: the message and the BadRequest detail both name it."""
        return cls(f"{field}: {description}", violations=(FieldViolation(field, description),))


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(DomainError):
    """A peer this call needs cannot be reached now; the caller may retry."""

    code = grpc.StatusCode.UNAVAILABLE


class ErrorInterceptor(Around):
    """DomainError → its status and message; anything else → INTERNAL, logged with the trace."""

    async def around(self, call, request, context, method):
        try:
            return await call(request, context)
        except DomainError as error:
            details = error.status_details()
            trailers = (("grpc-status-details-bin", details),) if details else ()
            await context.abort(error.code, error.message, trailing_metadata=trailers)
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except OUTAGES as error:
            _log.warning("%s: a store is unavailable: %r", method, error, extra={"rpc": method})
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "A store this call needs is unavailable; try again."
            )
        except Exception:
            _log.exception("unhandled error in %s", method, extra={"rpc": method})
            await context.abort(
                grpc.StatusCode.INTERNAL, "Internal error; it has been logged with this trace."
            )
