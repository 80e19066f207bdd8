"""OpenTelemetry tracing across gRPC calls, SQL, Redis and Kafka messages (W3C traceparent).

Spans are exported to a Zipkin server when OTEL_EXPORTER_ZIPKIN_ENDPOINT is
set (`make dev` runs one, and Envoy's tracer sends it the gateway's spans) and
over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is; both are the standard names.
Which traces are kept follows the standard OTEL_TRACES_SAMPLER (default: every
trace the caller samples, and every one this process starts), except that a
consumer's batch is kept whenever a request it applies events of was
(`FollowsSampledLinks`). With neither
endpoint nothing is recorded: every span is a non-recording one that only
carries its trace id, so logs and callees still see the trace id, at no other
cost (callees then see it unsampled: a process that does not export ends the
recording of the traces through it).
A recording process also times its SQL statements and Redis commands
(`trace_engine`, `trace_redis`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, get_current_span
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.interceptors import Around, code_seen

#: Whether this process exports spans (`configure`): only then are statements traced.
_recording = [False]


def configure(
    service: str, instance: str, otlp_endpoint: str = "", zipkin_endpoint: str = ""
) -> TracerProvider:
    """Install the tracer provider for this process; returns it so boot can shut it down."""
    resource = Resource.create({"service.name": service, "service.instance.id": instance})
    exporting = bool(otlp_endpoint or zipkin_endpoint)
    # None: the sampler OTEL_TRACES_SAMPLER names (parent-based, always on by default).
    provider = TracerProvider(resource=resource, sampler=None if exporting else ALWAYS_OFF)
    if exporting:
        provider.sampler = FollowsSampledLinks(provider.sampler)  # before any tracer is made
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    if zipkin_endpoint:
        from opentelemetry.exporter.zipkin.json import ZipkinExporter

        provider.add_span_processor(
            BatchSpanProcessor(ZipkinExporter(endpoint=zipkin_endpoint, timeout=5))
        )
    trace.set_tracer_provider(provider)
    _recording[0] = exporting
    if exporting:
        trace_redis()
    return provider


class FollowsSampledLinks(Sampler):
    """Samples a root span linked to a sampled span; leaves every other decision to
    `delegate`. A consumer's batch span is such a root, linked to the requests whose
    events it applies: when one of them is traced, so is the batch's own work (its SQL,
    its Redis writes), whatever ratio roots are otherwise sampled at."""

    def __init__(self, delegate: Sampler):
        self._delegate = delegate

    def should_sample(
        self,
        parent_context,
        trace_id,
        name,
        kind=None,
        attributes=None,
        links=None,
        trace_state=None,
    ) -> SamplingResult:
        root = not get_current_span(parent_context).get_span_context().is_valid
        if root and any(link.context.trace_flags.sampled for link in links or ()):
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return self._delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"FollowsSampledLinks{{{self._delegate.get_description()}}}"


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
            except Exception as error:
                if code_seen(context) in SERVER_FAULTS:
                    span.record_exception(error.__context__ or error)
                raise
            finally:
                code = code_seen(context)
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                if code in SERVER_FAULTS:
                    span.set_status(Status(StatusCode.ERROR, code.name))


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


def _sampled(parent: otel_context.Context) -> bool:
    """Whether spans are exported here and `parent`'s trace is one the sampler kept."""
    return _recording[0] and get_current_span(parent).get_span_context().trace_flags.sampled


def publishing(topic: str, event_id: str, carrier: dict[str, str]) -> Span | None:
    """A PRODUCER span for relaying one outbox event to Kafka, in the trace the event was
    added in (`carrier`: the headers Outbox.add kept); None unless that trace is sampled."""
    if not _recording[0]:
        return None
    parent = propagate.extract(carrier)
    if not _sampled(parent):
        return None
    return tracer().start_span(
        f"publish {topic}",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
            "messaging.message.id": event_id,
        },
    )


def headers_of(span: Span) -> dict[str, str]:
    """`span`'s context as message headers: what a consumer continues the trace from."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


@contextlib.contextmanager
def consuming(messages: Iterable[tuple[object, str, str]], group: str) -> Iterator[None]:
    """Around a batch's handler: a CONSUMER span for each (message headers, topic, event
    type) whose producing trace is sampled, a child in that trace, linked to the current
    (batch) span, so each request's trace shows its events applied by every group. The
    batch's own work (its SQL, its Redis writes) is in the batch span's trace, which
    each event's span names in its tag `zentry.batch.trace_id`."""
    if not _recording[0]:
        yield
        return
    batch_context = get_current_span().get_span_context()
    batch = Link(batch_context)
    # Zipkin keeps no links: the batch's trace id as a tag is the way from one to the other.
    batch_trace = format(batch_context.trace_id, "032x")
    spans = []
    for headers, topic, event_type in messages:
        parent = context_from_kafka(headers)
        if _sampled(parent):
            spans.append(
                tracer().start_span(
                    f"consume {event_type}",
                    context=parent,
                    kind=SpanKind.CONSUMER,
                    links=[batch],
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.operation.type": "process",
                        "messaging.destination.name": topic,
                        "messaging.consumer.group.name": group,
                        "zentry.batch.trace_id": batch_trace,
                    },
                )
            )
    try:
        yield
    except BaseException as error:
        for span in spans:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        raise
    finally:
        for span in spans:
            span.end()


def recording() -> bool:
    """Whether the current span is being recorded (sampled, in a process that exports)."""
    return get_current_span().is_recording()


def trace_engine(engine: AsyncEngine, database: str) -> None:
    """A CLIENT span for each SQL statement `engine` runs inside a recorded span, named
    by its first word and `database`, with the statement's text (never its values).
    Does nothing in a process that exports no spans."""
    if not _recording[0]:
        return
    sync = engine.sync_engine
    address = {"server.address": sync.url.host or "", "server.port": sync.url.port or 5432}

    @event.listens_for(sync, "before_cursor_execute")
    def _start(_conn, _cursor, statement, _parameters, context, _executemany):
        if recording():
            operation = statement.lstrip().split(None, 1)[0].upper() if statement else "SQL"
            context._zentry_span = tracer().start_span(
                f"{operation} {database}",
                kind=SpanKind.CLIENT,
                attributes={
                    "db.system.name": "postgresql",
                    "db.namespace": database,
                    "db.query.text": statement[:1000],
                    **address,
                },
            )

    @event.listens_for(sync, "after_cursor_execute")
    def _end(_conn, _cursor, _statement, _parameters, context, _executemany):
        span = getattr(context, "_zentry_span", None)
        if span is not None:
            span.end()

    @event.listens_for(sync, "handle_error")
    def _failed(context):
        span = getattr(context.execution_context, "_zentry_span", None)
        if span is not None:
            span.set_status(Status(StatusCode.ERROR, type(context.original_exception).__name__))
            span.end()


def trace_redis() -> None:
    """A CLIENT span for each Redis command or pipeline run inside a recorded span (every
    redis.asyncio client of this process; `configure` calls it when it exports)."""
    from redis.asyncio.client import Pipeline, Redis

    if getattr(Redis.execute_command, "_zentry_traced", False):
        return

    def span_of(client, name: str, count: int = 1):
        pool = client.connection_pool.connection_kwargs
        return tracer().start_as_current_span(
            name,
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": "redis",
                "db.operation.name": name,
                "db.operation.batch.size": count,
                "server.address": str(pool.get("host", "")),
                "server.port": int(pool.get("port", 6379)),
            },
        )

    command = Redis.execute_command

    @functools.wraps(command)
    async def execute_command(self, *args, **options):
        if not recording():
            return await command(self, *args, **options)
        with span_of(self, str(args[0]).upper()):
            return await command(self, *args, **options)

    pipeline = Pipeline.execute

    @functools.wraps(pipeline)
    async def execute(self, *args, **options):
        if not recording() or not self.command_stack:
            return await pipeline(self, *args, **options)
        with span_of(self, "PIPELINE", len(self.command_stack)):
            return await pipeline(self, *args, **options)

    execute_command._zentry_traced = execute._zentry_traced = True
    Redis.execute_command, Pipeline.execute = execute_command, execute
