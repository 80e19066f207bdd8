"""Sleep entry create through Envoy: POST /v1/sleepEntries, p50/p95, at concurrency 1 and 8.

The readers the feed benchmark registered record one-hour nights, each in a
two-hour slot of its own going back from yesterday (the load generator's
{{start}}/{{end}}), so no night overlaps another and every create succeeds.
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
from infra.config import Settings

SLOT = timedelta(hours=2)  # the load generator's -step
#: Accounts `main` records nights for, and what it prints of each run.
READERS = 40
PASSWORD = "bench-pass-1"
SHOWN = ("scenario", "concurrency", "requests", "errors", "rps", "p50_ms", "p95_ms", "p99_ms")


def run(settings: Settings, base_url: str, tokens: Path, seconds: float) -> list[dict]:
    body = Path(tempfile.mkstemp(prefix="zentry-bench-night-", suffix=".json")[1])
    body.write_text(json.dumps({"startTime": "{{start}}", "endTime": "{{end}}", "quality": 4}))
    readers = len(tokens.read_text().split())
    origin = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    rows = []
    try:
        for concurrency in (1, 8):
            print(f"bench sleep: entry create at concurrency {concurrency}", flush=True)
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
            rows.append({"scenario": "sleep entry create", **result})
            # the next run's slots start before every slot this one may have used
            sent = result["requests"] + result["errors"] + 2 * result["rps"]  # and the warm-up
            origin -= SLOT * (int(sent / readers) + 2)
    finally:
        body.unlink(missing_ok=True)
    return rows


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
            for row in run(settings, mesh.gateway_url, path, seconds):
                print(json.dumps({key: row.get(key) for key in SHOWN}))
        finally:
            path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
