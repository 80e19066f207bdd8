"""Server spans on a real grpc.aio server on loopback: the status code on every span, and an
exception recorded only when the server failed."""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from services.kit import telemetry
from services.kit.errors import ErrorInterceptor, Unauthenticated

SERVICE = "zentry.test.v1.Probe"


async def _refuse(_request, _context):
    raise Unauthenticated("Wrong username or password.")


async def _fail(_request, _context):
    raise RuntimeError("a bug")


async def _answer(request, _context):
    return request


@pytest.fixture
async def probe(monkeypatch):
    """A server with the kit's tracing and error interceptors; yields (channel, spans)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "tracer", lambda: provider.get_tracer("test"))
    server = grpc.aio.server(interceptors=[telemetry.ServerTracing(), ErrorInterceptor()])
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(behaviour)
        for name, behaviour in (("Refuse", _refuse), ("Fail", _fail), ("Answer", _answer))
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield channel, exporter
    await channel.close()
    await server.stop(0)


async def _call(channel, method: str) -> grpc.StatusCode:
    try:
        await channel.unary_unary(f"/{SERVICE}/{method}")(b"ping", timeout=5)
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
