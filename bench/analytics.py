"""Analytics benchmarks: TrackEvents through the gateway, and events from topic to rollup.

1. Intake: POST /v1/analytics/events:batchCreate through Envoy, batches of
   `batch` page views with ids of their own from a browser user agent, at
   concurrency 8 (the Go load generator). Accepted events/s is successful
   requests/s times the batch. Then the running analytics consumers catch up:
   events/s from the first request until the last event is rolled up.
2. Rollup alone: `events` accepted events from `visitors` visitors published
   first on a topic of the bench's own (6 partitions, like the real one),
   then the service's rollup runner (one, in this process) counts them into
   a scratch database and Redis database: events/s from start to the last
   committed batch. Then as many other events, published once
   bench.scratch.PROCESSES runner processes share the group: events/s until
   they have applied them all.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis
from zentry.events.v1 import analytics_events_pb2 as aev

from bench import loadgen
from bench.bulk_events import wait_consumed
from bench.limits import raw_consume_rate
from bench.scratch import ingest, produce_all, scratch
from infra.config import Settings
from services.analytics import app
from services.analytics.config import AnalyticsSettings
from services.analytics.product.rollups import GROUP
from services.analytics.product.tracking import Limits
from services.kit.db import Database, migrate
from services.kit.events import CLIENT_EVENTS, envelope

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
PAGES = ("/feed", "/stats", "/leaderboards", "/me", "/nights/new", "/settings")
_SETTINGS = AnalyticsSettings(
    service=None,  # type: ignore[arg-type]
    raw_retention=timedelta(days=30),
    limits=Limits(),
    batch_size=2000,
)


@dataclass(frozen=True)
class Scale:
    batch: int = 20
    events: int = 100_000
    visitors: int = 5_000
    seconds: float = 10.0

    @classmethod
    def times(cls, factor: float) -> Scale:
        return cls(events=max(5000, int(100_000 * factor)), visitors=max(200, int(5000 * factor)))


def run(settings: Settings, base_url: str, scale: Scale) -> dict:
    return {
        "intake": _intake(settings, base_url, scale),
        "rollup": asyncio.run(_rollup(settings, scale)),
    }


def _intake(settings: Settings, base_url: str, scale: Scale) -> dict:
    run_id = uuid.uuid4().hex[:8]
    events = [
        {
            "eventId": f"bench-{run_id}-{{{{n}}}}-{j}",
            "name": "page_view",
            "eventTime": "{{now}}",
            "page": PAGES[j % len(PAGES)],
            "anonymousId": f"bench-{{{{n}}}}-{j % 3}",
        }
        for j in range(scale.batch)
    ]
    body = Path(tempfile.mkstemp(prefix="zentry-bench-track-", suffix=".json")[1])
    body.write_text(json.dumps({"events": events}))
    print(
        f"bench analytics: TrackEvents ({scale.batch} events a call) at concurrency 8", flush=True
    )
    started = time.monotonic()
    try:
        result = loadgen.run(
            settings,
            f"{base_url}/v1/analytics/events:batchCreate",
            method="POST",
            body=body,
            headers={"User-Agent": BROWSER, "Content-Type": "application/json"},
            concurrency=8,
            seconds=scale.seconds,
            max_requests=100_000,
        )
    finally:
        body.unlink(missing_ok=True)
    caught_up = wait_consumed(settings.kafka.bootstrap_servers, {GROUP: CLIENT_EVENTS}, timeout=600)
    total = time.monotonic() - started
    # the load generator's warm-up second sends batches too: the consumers count those as well
    accepted = result["requests"] * scale.batch
    return {
        **result,
        "batch": scale.batch,
        "events_per_s": round(result["rps"] * scale.batch),
        "rolled_up_after_s": round(caught_up, 1),
        "live_rollup_events_per_s": round(accepted / total) if total else None,
    }


async def _rollup(settings: Settings, scale: Scale) -> dict:
    bootstrap = settings.kafka.bootstrap_servers
    with scratch(settings, f"bench-an-{uuid.uuid4().hex[:8]}", topics=2) as place:
        print(f"bench analytics: publishing {scale.events} accepted client events", flush=True)
        produce_all(bootstrap, place.topic, _accepted(scale, seed=5))
        raw = raw_consume_rate(bootstrap, place.topic, scale.events)  # the limit, same topic
        await asyncio.to_thread(migrate, place.dsn, app.MIGRATIONS)
        redis = Redis.from_url(place.redis_url)
        await redis.flushdb()
        ingestion = await ingest(
            settings,
            place,
            _runner,
            lambda topic: f"{GROUP}.{topic}",
            scale.events,
            list(_accepted(scale, seed=6)),  # other events: none of them counted yet
            "analytics rollup",
        )
        await redis.flushdb()
        await redis.aclose()
    return {
        **ingestion.figures(),
        "visitors": scale.visitors,
        "raw_consume": raw,
        "of_raw_consume": round(ingestion.rate / raw["per_s"], 3),
    }


async def _runner(bootstrap: str, topic: str, group: str, dsn: str, redis_url: str):
    """The rollups group's runner over the scratch place, and what closes its clients."""
    db, redis = Database(dsn), Redis.from_url(redis_url)
    *_sleep, rollups = app.consumers(
        _SETTINGS, db, redis, bootstrap, client_topic=topic, group_suffix=group[len(GROUP) :]
    )

    async def close() -> None:
        await redis.aclose()
        await db.dispose()

    return rollups, close


def _accepted(scale: Scale, seed: int):
    """Page views and taps from `visitors` visitors over the last day, keyed by visitor."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    visitors = [f"a:{rng.getrandbits(128):032x}" for _ in range(scale.visitors)]
    for i in range(scale.events):
        visitor = visitors[i % scale.visitors]
        event = aev.ClientEventAccepted(
            event_id=f"bench-{seed}-{i}",
            name="page_view" if i % 4 else "tap",
            visitor_id=visitor,
            page=rng.choice(PAGES),
            properties={"plan": rng.choice(("free", "plus")), "app": "web"},
        )
        event.event_time.FromDatetime(now - timedelta(seconds=rng.uniform(0, 86_400)))
        event.receive_time.FromDatetime(now)
        yield visitor, envelope(event, visitor, "bench", now).SerializeToString()
