"""Server spans and metrics on a real grpc.aio server on loopback: the status code the caller
saw on every span, an exception recorded only when the server failed, every call counted and
timed; the spans that carry a request's trace through the outbox and the consumers, and the
sampler that keeps a batch with the requests it serves."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import Link, StatusCode

from services.kit import metrics, telemetry
from services.kit.errors import ErrorInterceptor, Unauthenticated
from services.kit.interceptors import code_seen

SERVICE = "zentry.test.v1.Probe"


async def _refuse(_request, _context):
    raise Unauthenticated("Wrong username or password.")


async def _fail(_request, _context):
    raise RuntimeError("a bug")


async def _answer(request, _context):
    return request


async def _dawdle(request, _context):
    await asyncio.sleep(0.6)
    return request


@pytest.fixture
async def probe(monkeypatch):
    """A server with the kit's tracing and error interceptors; yields (channel, spans)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "tracer", lambda: provider.get_tracer("test"))
    server = grpc.aio.server(
        interceptors=[telemetry.ServerTracing(), metrics.ServerMetrics(), ErrorInterceptor()]
    )
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(behaviour)
        for name, behaviour in (
            ("Refuse", _refuse),
            ("Fail", _fail),
            ("Answer", _answer),
            ("Dawdle", _dawdle),
        )
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield channel, exporter
    await channel.close()
    await server.stop(0)


async def _call(channel, method: str, timeout: float = 5) -> grpc.StatusCode:
    try:
        await channel.unary_unary(f"/{SERVICE}/{method}")(b"ping", timeout=timeout)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_an_answer_to_the_caller_is_no_server_error_and_formats_no_traceback(probe):
    channel, exporter = probe
    codes = [await _call(channel, m) for m in ("Answer", "Refuse", "Fail")]
    assert codes == [grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL]
    spans = {s.name.rsplit("/", 1)[1]: s for s in exporter.get_finished_spans()}
    assert {n: s.attributes["rpc.grpc.status_code"] for n, s in spans.items()} == {
        "Answer": 0,
        "Refuse": 16,
        "Fail": 13,
    }
    assert spans["Answer"].status.status_code == StatusCode.UNSET
    assert spans["Refuse"].status.status_code == StatusCode.UNSET, "the caller's mistake"
    assert not spans["Refuse"].events, "no exception recorded, no traceback formatted"
    assert spans["Fail"].status.status_code == StatusCode.ERROR
    (event,) = spans["Fail"].events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "RuntimeError", "the bug, not the abort"


def _counted(method: str, code: str) -> float:
    return metrics.RPC_HANDLED.labels(SERVICE, method, code)._value.get()


def _timed(method: str, code: str) -> float:
    histogram = metrics.RPC_SECONDS.labels(SERVICE, method, code)
    return sum(bucket.get() for bucket in histogram._buckets)


async def test_every_call_is_counted_and_timed_by_method_and_final_code(probe):
    channel, _spans = probe
    calls = [("Answer", "OK"), ("Refuse", "UNAUTHENTICATED"), ("Fail", "INTERNAL")]
    before = {call: (_counted(*call), _timed(*call)) for call in calls}
    for method, _code in calls:
        await _call(channel, method)
    await _call(channel, "Answer")
    after = {call: (_counted(*call), _timed(*call)) for call in calls}
    assert after[calls[0]] == (before[calls[0]][0] + 2, before[calls[0]][1] + 2)
    for call in calls[1:]:
        assert after[call] == (before[call][0] + 1, before[call][1] + 1), call


async def test_a_call_past_its_deadline_counts_as_deadline_exceeded_not_ok(probe):
    channel, spans = probe
    before = _counted("Dawdle", "DEADLINE_EXCEEDED")
    assert await _call(channel, "Dawdle", timeout=0.2) == grpc.StatusCode.DEADLINE_EXCEEDED

    async def counted() -> bool:
        while _counted("Dawdle", "DEADLINE_EXCEEDED") == before:
            await asyncio.sleep(0.05)
        return True

    assert await asyncio.wait_for(counted(), 5)
    assert _counted("Dawdle", "OK") == 0
    (span,) = [s for s in spans.get_finished_spans() if s.name.endswith("/Dawdle")]
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert span.status.status_code == StatusCode.ERROR


@pytest.fixture
def recording(monkeypatch):
    """The kit's tracer writing to memory, as in a process that exports."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_ON)  # whatever OTEL_TRACES_SAMPLER says
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "tracer", lambda: provider.get_tracer("test"))
    monkeypatch.setattr(telemetry, "_recording", [True])
    return exporter


def test_a_relayed_event_and_its_consumers_join_the_trace_it_was_added_in(recording):
    tracer = telemetry.tracer()
    with tracer.start_as_current_span("request") as request:
        added = {key: value.decode() for key, value in telemetry.kafka_headers()}
    unsampled = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-00"}
    assert telemetry.publishing("topic", "e2", unsampled) is None, "a trace not kept"
    publish = telemetry.publishing("topic", "e1", added)
    carried = [(key, value.encode()) for key, value in telemetry.headers_of(publish).items()]
    publish.end()

    dropped = [(key, value.encode()) for key, value in unsampled.items()]
    messages = [(carried, "topic", "Created"), (dropped, "topic", "Created")]
    with (
        tracer.start_as_current_span("consume batch") as batch,
        telemetry.consuming(messages, "a-group"),
    ):
        pass
    spans = {span.name: span for span in recording.get_finished_spans()}
    assert set(spans) == {"request", "publish topic", "consume batch", "consume Created"}
    consumed, published = spans["consume Created"], spans["publish topic"]
    assert published.parent.span_id == request.get_span_context().span_id
    assert consumed.parent.span_id == published.context.span_id
    assert consumed.context.trace_id == request.get_span_context().trace_id
    assert (
        consumed.attributes["zentry.batch.trace_id"] == f"{batch.get_span_context().trace_id:032x}"
    )
    assert [link.context.span_id for link in consumed.links] == [batch.get_span_context().span_id]


def test_a_batch_linked_to_a_sampled_request_is_sampled_whatever_the_ratio():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=telemetry.FollowsSampledLinks(ParentBased(ALWAYS_OFF)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    kept = TracerProvider(sampler=ALWAYS_ON).get_tracer("test").start_span("request")
    dropped = tracer.start_span("another request")
    assert not dropped.get_span_context().trace_flags.sampled
    with tracer.start_as_current_span("consume batch", links=[Link(dropped.get_span_context())]):
        pass
    assert exporter.get_finished_spans() == (), "no sampled link: the ratio decides"
    links = [Link(dropped.get_span_context()), Link(kept.get_span_context())]
    with (
        tracer.start_as_current_span("consume batch", links=links) as batch,
        tracer.start_as_current_span("INSERT zentry_feed"),  # its work: kept with it
    ):
        pass
    assert [span.name for span in exporter.get_finished_spans()] == [
        "INSERT zentry_feed",
        "consume batch",
    ]
    assert batch.get_span_context().trace_id != kept.get_span_context().trace_id


class _Finished:
    """What code_seen reads of a call's context once its behaviour is over."""

    def __init__(self, code=None, remaining=None):
        self._code, self._remaining = code, remaining

    def code(self):
        return self._code

    def time_remaining(self):
        return self._remaining


async def test_the_code_the_caller_saw():
    assert code_seen(_Finished()) == grpc.StatusCode.OK
    assert code_seen(_Finished(grpc.StatusCode.NOT_FOUND, -1)) == grpc.StatusCode.NOT_FOUND
    assert code_seen(_Finished(remaining=-0.1)) == grpc.StatusCode.DEADLINE_EXCEEDED
    seen = []

    async def cancelled_call():
        try:
            await asyncio.sleep(30)
        finally:
            seen.append(code_seen(_Finished(remaining=10)))

    task = asyncio.create_task(cancelled_call())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [grpc.StatusCode.CANCELLED]
