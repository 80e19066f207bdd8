"""What tracing costs: a create and a feed read at concurrency 8, tracing off, 1 % and 100 %.

Each mode runs a mesh of its own (one API instance of each service, each consuming
too) so that nothing else differs: "off" exports nothing (every span a
non-recording one that only carries ids), "1 %" is production's setting
(k8s/base/config.env: Envoy starts 1 % of traces, the services follow its
decision, consumers' batches sample 1 % themselves), "100 %" is `make dev`'s.
READERS accounts, each following FOLLOWS others, record one-hour nights (so
the feeds have entries) and read their feeds. The figures: requests a second,
p50 and p95, and the CPU milliseconds a request cost the mesh's processes
(services and servers, Zipkin included). `python -m bench.tracing [seconds]`
runs it alone; `make bench` runs it after its other scenarios.
"""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench import loadgen, sleep
from bench.cpu import CpuMeter, server_pids
from infra.config import Settings
from infra.mesh import Layout, running
from services.kit.roster import SERVICES

READERS = 40
FOLLOWS = 10
PASSWORD = "bench-pass-1"
CONCURRENCY = 8
LAYOUT = Layout(dict.fromkeys(SERVICES, 1))


def modes(settings: Settings) -> dict[str, tuple[dict, dict]]:
    """mode → (the services' environment, the gateway's)."""
    spans, zipkin = settings.zipkin.spans_url, f"{settings.zipkin.host}:{settings.zipkin.port}"
    ratio = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}
    return {
        "off": ({"OTEL_EXPORTER_ZIPKIN_ENDPOINT": ""}, {"ZENTRY_GATEWAY_TRACE_COLLECTOR": "off"}),
        "1 %": (
            {"OTEL_EXPORTER_ZIPKIN_ENDPOINT": spans, **ratio, "OTEL_TRACES_SAMPLER_ARG": "0.01"},
            {"ZENTRY_GATEWAY_TRACE_COLLECTOR": zipkin, "ZENTRY_GATEWAY_TRACE_SAMPLING": "1"},
        ),
        "100 %": (
            {"OTEL_EXPORTER_ZIPKIN_ENDPOINT": spans, **ratio, "OTEL_TRACES_SAMPLER_ARG": "1"},
            {"ZENTRY_GATEWAY_TRACE_COLLECTOR": zipkin, "ZENTRY_GATEWAY_TRACE_SAMPLING": "100"},
        ),
    }


SHOWN = (
    "tracing",
    "scenario",
    "requests",
    "errors",
    "rps",
    "p50_ms",
    "p95_ms",
    "cpu_ms_per_request",
)


def run(settings: Settings, seconds: float, env: dict, gateway_env: dict) -> list[dict]:
    """Every mode in turn, each on a mesh of its own; a row per mode and scenario."""
    rows = []
    for mode, (services_env, gateway_mode) in modes(settings).items():
        print(f"bench tracing: {mode}", flush=True)
        with running(
            settings,
            LAYOUT,
            env={**env, **services_env},
            gateway_env={**gateway_env, **gateway_mode},
        ) as mesh:
            pids = {child.name: child.pid for child in mesh.instances}
            pids |= server_pids(settings.run_dir)
            tokens = _readers(mesh.gateway_url)
            try:
                rows += [
                    {"tracing": mode, **row}
                    for row in _measure(settings, mesh.gateway_url, tokens, seconds, pids)
                ]
            finally:
                tokens.unlink(missing_ok=True)
    return rows


def _readers(base_url: str) -> Path:
    """READERS accounts, each following the next FOLLOWS; a file of their tokens."""
    names, tokens = [], []
    with httpx.Client(base_url=base_url, timeout=30) as api:
        for _ in range(READERS):
            name = f"bench_tracer_{uuid.uuid4().hex[:8]}"
            account = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
            api.post("/v1/users", json=account).raise_for_status()
            session = api.post("/v1/sessions", json={"username": name, "password": PASSWORD})
            names.append(name)
            tokens.append(session.raise_for_status().json()["accessToken"])
        for i, token in enumerate(tokens):
            for step in range(1, FOLLOWS + 1):
                author = names[(i + step) % READERS]
                api.post(
                    f"/v1/users/{author}:follow",
                    headers={"Authorization": f"Bearer {token}"},
                    json={},
                ).raise_for_status()
    path = Path(tempfile.mkstemp(prefix="zentry-bench-tokens-")[1])
    path.write_text("\n".join(tokens))
    return path


def _measure(settings, base_url: str, tokens: Path, seconds: float, pids: dict) -> list[dict]:
    origin = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    meter = CpuMeter(pids).start()
    created = sleep.record_nights(settings, base_url, tokens, CONCURRENCY, seconds, origin)
    rows = [{"scenario": "sleep entry create", **created, **_cpu(meter, created)}]
    meter = CpuMeter(pids).start()
    read = loadgen.run(
        settings,
        f"{base_url}/v1/feed?pageSize=20",
        concurrency=CONCURRENCY,
        seconds=seconds,
        max_requests=200_000,
        tokens=tokens,
    )
    return [*rows, {"scenario": "feed read (GetFeed)", **read, **_cpu(meter, read)}]


def _cpu(meter: CpuMeter, result: dict) -> dict:
    """CPU milliseconds a request, every measured process together (a create's until every
    consumer has applied it)."""
    spent = sum(meter.stop().values())
    return {"cpu_ms_per_request": round(spent * 1000 / max(result["requests"], 1), 2)}


def main(argv: list[str] | None = None) -> int:
    from bench.__main__ import QUIET, UNLIMITED
    from infra import config

    args = sys.argv[1:] if argv is None else argv
    seconds = float(args[0]) if args else 15.0
    for row in run(config.load(), seconds, QUIET, UNLIMITED):
        print(json.dumps({key: row.get(key) for key in SHOWN}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
