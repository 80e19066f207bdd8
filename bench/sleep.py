"""Sleep entry create through Envoy: POST /v1/sleepEntries, p50/p95, at concurrency 1 and 8.

The readers the feed benchmark registered record one-hour nights, each in a
two-hour slot of its own going back from yesterday (the load generator's
{{start}}/{{end}}), so no night overlaps another and every create succeeds.
Every consumer of the mesh runs meanwhile. After each run: the seconds until
every consumer group of sleep events has caught up, and the CPU milliseconds
a recorded night cost each process (bench.cpu: the services' instances, by
service, and the servers), from the start of the load until caught up.
`python -m bench.sleep [seconds]` runs it alone, on a mesh of its own with
readers of its own.
"""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench import loadgen
from bench.bulk_events import wait_consumed
from bench.cpu import CpuMeter, server_pids
from infra.config import Settings
from services.analytics.stats.projector import NIGHTS_GROUP
from services.feed.projector import ENTRIES_GROUP
from services.kit.events import SLEEP_EVENTS
from services.leaderboard.projector import SCORES_GROUP

SLOT = timedelta(hours=2)  # the load generator's -step
#: Accounts `main` records nights for, and what it prints of each run.
READERS = 40
PASSWORD = "bench-pass-1"
SHOWN = ("scenario", "concurrency", "requests", "errors", "rps", "p50_ms", "p95_ms", "p99_ms",
         "caught_up_after_s", "cpu_ms_per_night")  # fmt: skip


#: Every consumer group of sleep events: a night is recorded once each has applied it.
NIGHT_GROUPS = (ENTRIES_GROUP, SCORES_GROUP, NIGHTS_GROUP)


def run(
    settings: Settings, base_url: str, tokens: Path, seconds: float, pids: dict[str, int]
) -> list[dict]:
    """Both concurrencies; `pids` names the mesh's instances (`sleep-1`, ...) to measure."""
    readers = len(tokens.read_text().split())
    origin = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    rows = []
    for concurrency in (1, 8):
        print(f"bench sleep: entry create at concurrency {concurrency}", flush=True)
        meter = CpuMeter({**pids, **server_pids(settings.run_dir)}).start()
        result = record_nights(settings, base_url, tokens, concurrency, seconds, origin)
        result["cpu_ms_per_night"] = _per_night(meter.stop(), result["requests"])
        rows.append({"scenario": "sleep entry create", **result})
        # the next run's slots start before every slot this one may have used
        sent = result["requests"] + result["errors"] + 2 * result["rps"]  # and the warm-up
        origin -= SLOT * (int(sent / readers) + 2)
    return rows


def record_nights(
    settings: Settings,
    base_url: str,
    tokens: Path,
    concurrency: int,
    seconds: float,
    origin: datetime,
) -> dict:
    """POST /v1/sleepEntries for `seconds` at `concurrency`, one-hour nights in two-hour slots
    going back from `origin`; the load generator's figures, and `caught_up_after_s`: the
    seconds until every consumer group of sleep events had applied them."""
    body = Path(tempfile.mkstemp(prefix="zentry-bench-night-", suffix=".json")[1])
    body.write_text(json.dumps({"startTime": "{{start}}", "endTime": "{{end}}", "quality": 4}))
    try:
        result = loadgen.run(
            settings,
            f"{base_url}/v1/sleepEntries",
            method="POST",
            body=body,
            headers={"Content-Type": "application/json"},
            tokens=tokens,
            concurrency=concurrency,
            seconds=seconds,
            max_requests=50_000,
            origin=origin.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    finally:
        body.unlink(missing_ok=True)
    caught_up = wait_consumed(
        settings.kafka.bootstrap_servers, dict.fromkeys(NIGHT_GROUPS, SLEEP_EVENTS), timeout=300
    )
    return {**result, "caught_up_after_s": round(caught_up, 1)}


def _per_night(spent: dict[str, float], nights: int) -> dict[str, float]:
    """CPU ms a night, by service (instances summed) and server, and in all."""
    by_process: dict[str, float] = {}
    for name, seconds in spent.items():
        service = name.rsplit("-", 1)[0] if name[-1].isdigit() else name
        by_process[service] = by_process.get(service, 0) + seconds
    per_night = {name: round(s * 1000 / max(nights, 1), 2) for name, s in by_process.items()}
    return {**per_night, "all": round(sum(spent.values()) * 1000 / max(nights, 1), 2)}


def main(argv: list[str] | None = None) -> int:
    """This scenario alone: the bench's mesh (two instances of every service, each
    consuming), READERS accounts signed up and logged in, then both concurrencies."""
    from bench.__main__ import QUIET, UNLIMITED
    from infra import config
    from infra.mesh import BENCH, running

    args = sys.argv[1:] if argv is None else argv
    seconds = float(args[0]) if args else 20.0
    settings = config.load()
    with running(settings, BENCH, env=QUIET, gateway_env=UNLIMITED) as mesh:
        tokens = []
        with httpx.Client(base_url=mesh.gateway_url, timeout=30) as api:
            for _ in range(READERS):
                name = f"bench_sleeper_{uuid.uuid4().hex[:8]}"
                account = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
                api.post("/v1/users", json=account).raise_for_status()
                session = api.post("/v1/sessions", json={"username": name, "password": PASSWORD})
                tokens.append(session.raise_for_status().json()["accessToken"])
        path = Path(tempfile.mkstemp(prefix="zentry-bench-tokens-")[1])
        try:
            path.write_text("\n".join(tokens))
            pids = {child.name: child.pid for child in mesh.instances}
            for row in run(settings, mesh.gateway_url, path, seconds, pids):
                print(json.dumps({key: row.get(key) for key in SHOWN}))
        finally:
            path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
