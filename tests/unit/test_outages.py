"""Which failures are outages (retried until they pass) rather than a message's fault."""

from __future__ import annotations

import pytest
from redis import exceptions as redis_errors
from sqlalchemy import exc as sa_errors

from services.kit.errors import OUTAGES


@pytest.mark.parametrize(
    "error",
    [
        sa_errors.TimeoutError("QueuePool limit of size 10 overflow 10 reached"),
        sa_errors.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        sa_errors.InterfaceError("SELECT 1", {}, Exception("connection already closed")),
        redis_errors.ConnectionError("Connection refused"),
        redis_errors.TimeoutError("Timeout reading from socket"),
        redis_errors.BusyLoadingError("Redis is loading the dataset in memory"),
        redis_errors.OutOfMemoryError("command not allowed when used memory > 'maxmemory'"),
        redis_errors.ReadOnlyError("You can't write against a read only replica."),
        redis_errors.TryAgainError("TRYAGAIN"),
        redis_errors.MasterDownError("MASTERDOWN Link with MASTER is down"),
        TimeoutError(),
        ConnectionResetError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_infrastructure_failures_are_outages(error):
    assert isinstance(error, OUTAGES)


@pytest.mark.parametrize(
    "error",
    [
        sa_errors.IntegrityError("INSERT", {}, Exception("duplicate key")),
        sa_errors.DataError("INSERT", {}, Exception("invalid input syntax for type uuid")),
        redis_errors.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"),
        ValueError("bad payload"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_bad_message_is_not_an_outage(error):
    assert not isinstance(error, OUTAGES)
