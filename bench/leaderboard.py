"""Leaderboard benchmarks: ingestion from topic to committed board, and query latency.

1. Ingestion: `events` SleepEntryCreated events for `users` users are
   published first on a topic of the bench's own (6 partitions, like
   zentry.sleep.events), then the service's batch runner (one, in this
   process) applies them into a scratch database and Redis database, with
   every window the events touch already in Redis (as boards people look at
   are), so each batch writes the boards too; the figure is events applied
   per second, from start to the last committed batch. Then as many other
   nights, published once bench.scratch.PROCESSES runner processes share the
   group: events/s until they have applied them all. Topics and database
   are deleted afterwards.
2. Queries: the readers registered by the feed bench get nights on the real
   topic; then GET /v1/leaderboards/total-duration/all-time (top 20) and
   ...:aroundMe (radius 5) through Envoy, with the Go load generator, at
   concurrency 1 and 8.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from google.protobuf import duration_pb2
from redis.asyncio import Redis
from zentry.events.v1 import sleep_events_pb2 as sev

from bench import loadgen
from bench.bulk_events import BulkPublisher, wait_consumed
from bench.limits import raw_consume_rate
from bench.scratch import ingest, produce_all, scratch
from infra.config import Settings
from services.kit.consumer import ConsumerRunner
from services.kit.db import Database, migrate
from services.kit.events import SLEEP_EVENTS, envelope
from services.leaderboard import app, domain
from services.leaderboard.boards import board_key
from services.leaderboard.config import LeaderboardSettings
from services.leaderboard.projector import SCORES_GROUP

TARGET_PER_S = 1_000_000 / 60  # the design note's 1M events a minute
_SETTINGS = LeaderboardSettings(
    service=None,  # type: ignore[arg-type]
    min_nights={"daily": 1, "weekly": 3, "monthly": 7, "all-time": 14},
    retention=timedelta(days=14),
    batch_size=5000,
)


@dataclass(frozen=True)
class Scale:
    events: int = 200_000
    users: int = 20_000
    seconds: float = 10.0

    @classmethod
    def times(cls, factor: float) -> Scale:
        return cls(events=max(5000, int(200_000 * factor)), users=max(500, int(20_000 * factor)))


def run(settings: Settings, base_url: str, tokens: Path, readers: list[str], scale: Scale) -> dict:
    ingestion = asyncio.run(_ingestion(settings, scale))
    queries = _queries(settings, base_url, tokens, readers, scale)
    return {"ingestion": ingestion, "queries": queries}


async def _ingestion(settings: Settings, scale: Scale) -> dict:
    bootstrap = settings.kafka.bootstrap_servers
    with scratch(settings, f"bench-lb-{uuid.uuid4().hex[:8]}", topics=2) as place:
        print(f"bench leaderboard: publishing {scale.events} sleep events", flush=True)
        published = time.monotonic()
        produce_all(bootstrap, place.topic, _nights(scale, seed=11))
        publish_s = time.monotonic() - published
        raw = raw_consume_rate(bootstrap, place.topic, scale.events)  # the limit, same topic
        await asyncio.to_thread(migrate, place.dsn, app.MIGRATIONS)
        redis = Redis.from_url(place.redis_url)
        await redis.flushdb()
        boards, _projector = app.parts(_SETTINGS, None, redis)  # type: ignore[arg-type]
        today = datetime.now(UTC).date()
        windows = {w for d in range(61) for w in domain.windows_of(today - timedelta(days=d))}
        for window in windows:  # boards people look at: every window of the events is in Redis
            await boards.write_window(window, [], datetime.now(UTC))
        ingestion = await ingest(
            settings,
            place,
            _runner,
            lambda topic: topic,
            scale.events,
            list(_nights(scale, seed=12)),  # other entries: none of them recorded yet
            "leaderboard ingestion",
        )
        boards = len([k async for k in redis.scan_iter(match="lb:board:*", count=1000)])
        members = await _member_bytes(redis)
        await redis.flushdb()
        await redis.aclose()
    return {
        **ingestion.figures(),
        "users": scale.users,
        "target_per_s": round(TARGET_PER_S),
        "of_target": round(ingestion.rate / TARGET_PER_S, 3),
        "processes_of_target": round(ingestion.processes_rate / TARGET_PER_S, 3),
        "publish_per_s": round(scale.events / publish_s),
        "boards_written": boards,
        "windows_in_redis": len(windows),
        "redis_bytes_per_member": members,
        "raw_consume": raw,
        "of_raw_consume": round(ingestion.rate / raw["per_s"], 3),
    }


async def _runner(bootstrap: str, topic: str, group: str, dsn: str, redis_url: str):
    """The scores group's runner over the scratch place, and what closes its clients."""
    db, redis = Database(dsn), Redis.from_url(redis_url)
    _boards, projector = app.parts(_SETTINGS, db, redis)
    scores, _directory = projector.subscriptions(sleep_topic=topic, groups=(group, f"{group}.d"))
    runner = ConsumerRunner(db, bootstrap, scores, max_batch=_SETTINGS.batch_size)

    async def close() -> None:
        await redis.aclose()
        await db.dispose()

    return runner, close


async def _member_bytes(redis: Redis) -> float | None:
    """Redis bytes per board member, over the all-time boards (every user is on them)."""
    used = members = 0
    async for key in redis.scan_iter(match=board_key("*", domain.ALL_TIME), count=1000):
        members += await redis.zcard(key)
        used += await redis.memory_usage(key, samples=0)
    return round(used / members, 1) if members else None


def _nights(scale: Scale, seed: int):
    """Created nights for `users` users over the last 60 days, keyed by user."""
    rng = random.Random(seed)
    users = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(scale.users)]
    today = datetime.now(UTC).date()
    now = datetime.now(UTC)
    for i in range(scale.events):
        user = users[i % scale.users]
        day = today - timedelta(days=(i // scale.users) % 60)
        state = _state(user, day, rng.randint(5 * 3600, 9 * 3600))
        event = envelope(sev.SleepEntryCreated(entry=state), user, "bench", now)
        yield user, event.SerializeToString()


def _state(user: str, day: date, seconds: int) -> sev.SleepEntryState:
    return sev.SleepEntryState(
        entry_id=str(uuid.uuid4()),
        user_id=user,
        duration=duration_pb2.Duration(seconds=seconds),
        sleep_date=day.isoformat(),
        time_zone="UTC",
        revision=1,
    )


def _queries(settings: Settings, base: str, tokens: Path, readers: list[str], scale: Scale):
    publisher = BulkPublisher(settings.kafka.bootstrap_servers)
    for reader in readers:  # the readers sleep too, so that they are on the boards
        for day in range(1, 6):
            publisher.night(reader, day, fresh=True)
    publisher.flush()
    wait_consumed(settings.kafka.bootstrap_servers, {SCORES_GROUP: SLEEP_EVENTS}, timeout=300)
    rows = []
    for concurrency in (1, 8):
        for name, path in (
            ("leaderboard top 20", "/v1/leaderboards/total-duration/all-time?pageSize=20"),
            ("leaderboard around me", "/v1/leaderboards/total-duration/all-time:aroundMe?radius=5"),
        ):
            print(f"bench leaderboard: {name} at concurrency {concurrency}", flush=True)
            result = loadgen.run(
                settings,
                f"{base}{path}",
                concurrency=concurrency,
                seconds=scale.seconds,
                max_requests=200_000,
                tokens=tokens,
            )
            rows.append({"scenario": name, **result})
    return rows
