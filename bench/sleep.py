"""Sleep entry create through Envoy: POST /v1/sleepEntries, p50/p95, at concurrency 1 and 8.

The readers the feed benchmark registered record one-hour nights, each in a
two-hour slot of its own going back from yesterday (the load generator's
{{start}}/{{end}}), so no night overlaps another and every create succeeds.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import loadgen
from infra.config import Settings

SLOT = timedelta(hours=2)  # the load generator's -step


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
