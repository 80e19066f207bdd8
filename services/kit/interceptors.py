"""The one way the kit's server interceptors wrap a call: around its behaviour.

A grpc.aio server interceptor can only swap the method handler. `Around`
rebuilds the handler with the same (de)serializers and a behaviour that runs
`around(call, request, context, method)` in the call's own task, so context
variables it sets (the caller, the span) are seen by the servicer.

A server-streaming call (WatchFeed) goes through `around_stream`, by default
`around` the whole stream: its `call` writes each message as it comes
(`context.write`) and returns when the stream ends, so the caller is known,
errors map to statuses and the span lasts while the stream does.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
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
    """Base class: override `around` (and `around_stream`, if a stream needs otherwise);
    unary requests only, answered once or as a stream."""

    async def around(
        self, call: Behaviour, request: Any, context: grpc.aio.ServicerContext, method: str
    ) -> Any:
        raise NotImplementedError

    async def around_stream(
        self, call: Behaviour, request: Any, context: grpc.aio.ServicerContext, method: str
    ) -> None:
        await self.around(call, request, context, method)

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
        if handler.unary_stream and not method.startswith(INFRASTRUCTURE_PREFIXES):
            streamed = _writing(handler.unary_stream)

            async def stream_behaviour(request, context):
                await self.around_stream(streamed, request, context, method)

            return grpc.unary_stream_rpc_method_handler(
                stream_behaviour,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # health Watch, reflection: left as they are


def _writing(inner) -> Behaviour:
    """A streaming behaviour that writes its messages itself, whether `inner` yields them (the
    servicer, an async generator) or writes them (an interceptor's behaviour)."""

    async def behaviour(request, context):
        produced = inner(request, context)
        if inspect.isasyncgen(produced):
            async with contextlib.aclosing(produced):
                async for message in produced:
                    await context.write(message)
        else:
            await produced

    return behaviour


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
