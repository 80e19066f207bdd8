"""OpenTelemetry tracing across gRPC calls and Kafka messages (W3C traceparent).

Spans are always made, so logs carry trace ids; they are exported over OTLP
only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.kit.interceptors import Around

_tracer = trace.get_tracer("zentry.kit")


def configure(service: str, instance: str, otlp_endpoint: str) -> TracerProvider:
    """Install the tracer provider for this process; returns it so boot can shut it down."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.instance.id": instance})
    )
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    trace.set_tracer_provider(provider)
    return provider


_made: list = [None, None]  # the provider, and the tracer made from it


def tracer() -> trace.Tracer:
    """The kit's tracer from the installed provider, made once for it (every RPC asks)."""
    provider = trace.get_tracer_provider()
    if _made[0] is not provider:
        _made[:] = [provider, provider.get_tracer("zentry")]
    return _made[1]


#: Codes that say the server failed (OpenTelemetry's gRPC conventions): their spans are
#: errors. The others answer the caller's request (a wrong password, a missing night).
SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


class ServerTracing(Around):
    """One SERVER span per RPC, continuing the caller's trace from its metadata.

    The span carries the status code. Only a server fault marks it an error and
    records the exception behind it; an answer such as UNAUTHENTICATED formats no
    traceback (that formatting was a sixth of the CPU of refusing a log-in).
    """

    async def around(self, call, request, context, method):
        carrier = dict(context.invocation_metadata() or ())
        parent = propagate.extract(carrier)
        with tracer().start_as_current_span(
            method.lstrip("/"),
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.method": method},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await call(request, context)
            except BaseException as error:
                if _code(context) in SERVER_FAULTS:
                    span.record_exception(error.__context__ or error)
                raise
            finally:
                code = _code(context)
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                if code in SERVER_FAULTS:
                    span.set_status(Status(StatusCode.ERROR, code.name))


def _code(context) -> grpc.StatusCode:
    """The call's status so far: OK until the servicer or the kit set another."""
    return context.code() or grpc.StatusCode.OK


class ClientTracing(grpc.aio.UnaryUnaryClientInterceptor):
    """Puts the current trace into outgoing call metadata."""

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        metadata = list(client_call_details.metadata or ()) + list(carrier.items())
        details = client_call_details._replace(metadata=grpc.aio.Metadata(*metadata))
        return await continuation(details, request)


def kafka_headers() -> list[tuple[str, bytes]]:
    """The current trace as Kafka message headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(key, value.encode()) for key, value in carrier.items()]


def context_from_kafka(headers: Iterable[tuple[str, bytes]] | None) -> otel_context.Context:
    """The trace a Kafka message was produced in (empty context when it carries none)."""
    carrier = {key: value.decode(errors="replace") for key, value in headers or () if value}
    return propagate.extract(carrier)
