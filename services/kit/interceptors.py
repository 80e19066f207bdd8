"""The one way the kit's server interceptors wrap a call: around its behaviour.

A grpc.aio server interceptor can only swap the method handler. `Around`
rebuilds the handler with the same (de)serializers and a behaviour that runs
`around(call, request, context, method)` in the call's own task, so context
variables it sets (the caller, the span) are seen by the servicer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]

# Standard services every server carries; never behind auth.
INFRASTRUCTURE_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


class Around(grpc.aio.ServerInterceptor):
    """Base class: override `around`; unary requests only (all Zentry RPCs are unary)."""

    async def around(
        self, call: Behaviour, request: Any, context: grpc.aio.ServicerContext, method: str
    ) -> Any:
        raise NotImplementedError

    def applies_to(self, method: str) -> bool:
        return True

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self.applies_to(method):
            return handler
        if handler.unary_unary:
            inner = handler.unary_unary

            async def behaviour(request, context):
                return await self.around(inner, request, context, method)

            return grpc.unary_unary_rpc_method_handler(
                behaviour,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # streaming (e.g. health Watch, reflection): left as it is


def metadata_value(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value
    return None


def code_seen(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    """The status the caller saw, once the call's behaviour is over: the one set, else
    DEADLINE_EXCEEDED if its deadline passed first (the answer came too late), else
    CANCELLED if the call's task was cancelled (the caller went away), else OK."""
    if context.code():
        return context.code()
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.OK
