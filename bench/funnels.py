"""Funnel and retention query times over a bench population of product events.

`python -m bench.funnels [scale]` (the servers of `make infra-up`, no mesh), and a
part of `make bench`. In a scratch database and Redis database:

1. A population of `users` signed-in users, first seen over the last `weeks`
   weeks, each coming back on some later days (a few percent churn a day), and
   `visits` anonymous visitor-days (a new visitor hash every day, as the
   daily salt makes them). A visit is a few page views and maybe the funnel's
   steps, in order, out of order, repeated, or across midnight; one event in
   twenty arrives up to 72 hours late. Every event goes through the rollup
   consumer's own code (Rollups.apply, a transaction per 2,000 events, as the
   runner calls it; no Kafka), then VACUUM ANALYZE, as autovacuum would.
2. GetFunnel and GetRetention called in this process (the service's own
   Reports, no gRPC or gateway: those add about a millisecond), `repeats`
   times each after one warm-up: p50 and p95, and how many rows each read.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2
from redis.asyncio import Redis
from sqlalchemy import text
from zentry.analytics.v1 import product_analytics_service_pb2 as pb
from zentry.events.v1 import analytics_events_pb2 as aev

from bench.scratch import BENCH_REDIS_DB
from infra import config
from infra.config import Settings
from infra.servers.postgres import scratch_database
from services.analytics import app
from services.analytics.product.cardinality import Caps
from services.analytics.product.reports import Reports
from services.analytics.product.rollups import Rollups
from services.analytics.product.uniques import Uniques
from services.kit.db import Database, migrate

VIEW, TRIAL, NIGHT = "view_plans", "start_trial", "first_night"
PAGES = ("/feed", "/stats", "/leaderboards", "/me", "/plans")
BATCH = 2000


@dataclass(frozen=True)
class Scale:
    users: int = 4000
    visits: int = 4000
    weeks: int = 12
    repeats: int = 20

    @classmethod
    def times(cls, factor: float) -> Scale:
        return cls(users=max(200, int(4000 * factor)), visits=max(200, int(4000 * factor)))


def run(settings: Settings, scale: Scale) -> dict:
    return asyncio.run(_measure(settings, scale))


async def _measure(settings: Settings, scale: Scale) -> dict:
    now = datetime.now(UTC)
    events = list(_population(scale, now, random.Random(7)))
    name = f"bench_funnels_{uuid.uuid4().hex[:8]}"
    with scratch_database(settings.postgres, name) as dsn:
        await asyncio.to_thread(migrate, dsn, app.MIGRATIONS)
        db = Database(dsn)
        redis = Redis.from_url(settings.redis.url(BENCH_REDIS_DB))
        try:
            await redis.flushdb()
            built = await _build(db, redis, events)
            reports = Reports(db, Uniques(redis), timedelta(days=30), timedelta(days=400))
            queries = [await _time(db, reports, q, scale.repeats) for q in _queries(now)]
        finally:
            await redis.flushdb()
            await redis.aclose()
            await db.dispose()
    return {
        "population": {**built, "users": scale.users, "visits": scale.visits},
        "queries": queries,
    }


def _population(scale: Scale, now: datetime, rng: random.Random):
    """ClientEventAccepted messages, in the order they arrive."""
    span = scale.weeks * 7
    arriving = []
    for n in range(scale.users):
        user = str(uuid.UUID(int=rng.getrandbits(128)))
        day = rng.randrange(span)
        while day >= 0:  # days ago
            arriving += _visit(rng, now, day, f"u:{user}", user, f"{user}-{day}")
            day -= 1
            while day >= 0 and rng.random() > 0.2:  # a day without a visit
                day -= 1
            if rng.random() < 0.04:  # gone for good
                break
        if n % 1000 == 999:
            print(f"bench funnels: {n + 1} users, {len(arriving)} events", flush=True)
    for n in range(scale.visits):
        visitor = f"a:{rng.getrandbits(128):032x}"
        arriving += _visit(rng, now, rng.randrange(span), visitor, "", f"anon-{n}")
    arriving.sort(key=lambda pair: pair[0])
    return (event for _arrival, event in arriving)


def _visit(rng: random.Random, now: datetime, days_ago: int, visitor: str, user: str, key: str):
    """(arrival, event) pairs of one visit: page views, and maybe the funnel's steps."""
    start = now - timedelta(days=days_ago, seconds=rng.uniform(0, 86_400))
    steps = [("page_view", 0.0)] * rng.randint(2, 6)
    if rng.random() < 0.3:
        steps.append((VIEW, 1.0))
        if rng.random() < 0.5:
            steps.append((TRIAL, rng.uniform(1, 30)))
            if rng.random() < 0.3:
                steps.append((VIEW, rng.uniform(0, 40)))  # back to the plans
            if rng.random() < 0.6:
                steps.append((NIGHT, rng.uniform(30, 60 * 20)))  # that night: often next day
    found, minutes = [], 0.0
    for i, (name, after) in enumerate(steps):
        minutes += rng.uniform(0.2, 3) if name == "page_view" else after
        when = start + timedelta(minutes=minutes)
        if when > now:
            break
        late = timedelta(hours=rng.uniform(0, 72)) if rng.random() < 0.05 else timedelta(0)
        event = aev.ClientEventAccepted(
            event_id=f"{key}-{i}",
            name=name,
            visitor_id=visitor,
            user_id=user,
            page=rng.choice(PAGES),
        )
        event.event_time.FromDatetime(when)
        event.receive_time.FromDatetime(min(when + late, now))
        found.append((when + late, event))
    return found


async def _build(db: Database, redis: Redis, events: list[aev.ClientEventAccepted]) -> dict:
    rollups = Rollups(Uniques(redis), Caps())
    started = time.monotonic()
    for first in range(0, len(events), BATCH):
        async with db.transaction() as session:
            await rollups.apply([(None, e) for e in events[first : first + BATCH]], session)
    seconds = time.monotonic() - started
    async with db.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM ANALYZE"))
    async with db.transaction() as session:
        rows = {
            table: (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
            for table in ("raw_events", "users_seen", "active_days")
        }
    print(f"bench funnels: {len(events)} events applied in {seconds:.1f} s", flush=True)
    return {
        "events": len(events),
        "build_s": round(seconds, 1),
        "events_per_s": round(len(events) / seconds),
        "rows": rows,
    }


@dataclass(frozen=True)
class Query:
    label: str
    request: pb.GetFunnelRequest | pb.GetRetentionRequest


def _queries(now: datetime) -> list[Query]:
    def stamp(when: datetime) -> timestamp_pb2.Timestamp:
        found = timestamp_pb2.Timestamp()
        found.FromDatetime(when)
        return found

    month = {"start_time": stamp(now - timedelta(days=28)), "window": _DAY}
    steps = f"{VIEW},{TRIAL},{NIGHT}"
    return [
        Query(
            f"GetFunnel {steps}, 28 days, window 1 day, by visitor",
            pb.GetFunnelRequest(steps=[steps], **month),
        ),
        Query("the same, by user", pb.GetFunnelRequest(steps=[steps], by="user", **month)),
        Query(
            f"GetFunnel page_view,{TRIAL},{NIGHT} (every page view starts an attempt)",
            pb.GetFunnelRequest(steps=[f"page_view,{TRIAL},{NIGHT}"], **month),
        ),
        Query(
            "GetRetention weekly, the cohorts of 12 to 4 weeks ago, 8 weeks after each, "
            "Europe/Paris",
            pb.GetRetentionRequest(
                granularity="week",
                start_time=stamp(now - timedelta(weeks=12)),
                end_time=stamp(now - timedelta(weeks=4, days=1)),
                periods=8,
                time_zone="Europe/Paris",
            ),
        ),
        Query(
            "GetRetention daily, the cohorts of the last 28 days, 14 days after each, "
            "America/New_York",
            pb.GetRetentionRequest(
                granularity="day",
                start_time=stamp(now - timedelta(days=28)),
                periods=14,
                time_zone="America/New_York",
            ),
        ),
    ]


_DAY = duration_pb2.Duration(seconds=86_400)


async def _time(db: Database, reports: Reports, query: Query, repeats: int) -> dict:
    call = reports.funnel if isinstance(query.request, pb.GetFunnelRequest) else reports.retention
    answer = await call(query.request)  # warm-up: plans cached, as a dashboard's second look
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call(query.request)
        seconds.append(time.perf_counter() - started)
    async with db.transaction() as session:
        reads = (await session.execute(*_rows_read(query.request, answer))).scalar()
    ms = sorted(s * 1000 for s in seconds)
    return {
        "query": query.label,
        "rows_read": reads,
        "answer": _summary(answer),
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 1),
    }


def _rows_read(request, answer) -> tuple:
    """A count of the rows the query read: raw events of its steps in its range and window;
    or its cohorts' active days (from the first cohort on; its last cohort's end taken as a
    whole day or week after its start)."""
    if isinstance(answer, pb.Funnel):
        until = answer.end_time.ToDatetime(tzinfo=UTC) + answer.window.ToTimedelta()
        users = " AND user_id IS NOT NULL" if answer.by == "user" else ""
        return text(
            "SELECT count(*) FROM raw_events WHERE name = ANY(CAST(:names AS text[])) "
            "AND event_time >= :start AND event_time < :until" + users
        ), {
            "names": [s.name for s in answer.steps],
            "start": answer.start_time.ToDatetime(tzinfo=UTC),
            "until": until,
        }
    first = answer.cohorts[0].period.start_time.ToDatetime(tzinfo=UTC)
    step = timedelta(weeks=1) if answer.granularity == "week" else timedelta(days=1)
    last = answer.cohorts[-1].period.start_time.ToDatetime(tzinfo=UTC) + step
    return text(
        "SELECT count(*) FROM users_seen u JOIN active_days a USING (user_id) "
        "WHERE u.first_seen >= :first AND u.first_seen < :last AND a.day >= :day"
    ), {"first": first, "last": last, "day": first.date()}


def _summary(answer) -> str:
    if isinstance(answer, pb.Funnel):
        return " → ".join(str(s.count) for s in answer.steps)
    sizes = [c.size for c in answer.cohorts]
    return f"{len(sizes)} cohorts, {sum(sizes)} users"


def report(results: dict) -> list[str]:
    p = results["population"]
    rows = p["rows"]
    lines = [
        "",
        f"### Funnels and retention ({p['events']} events of {p['users']} users and "
        f"{p['visits']} anonymous visits, applied by the rollup code at {p['events_per_s']}/s; "
        f"{rows['raw_events']} raw events, {rows['users_seen']} users seen, "
        f"{rows['active_days']} active days; in-process calls)",
        "",
        "| query | rows it reads | answer | p50 ms | p95 ms |",
        "|---|---:|---|---:|---:|",
    ]
    for q in results["queries"]:
        lines.append(
            f"| {q['query']} | {q['rows_read']} | {q['answer']} | {q['p50_ms']} | {q['p95_ms']} |"
        )
    return lines


def main() -> int:
    factor = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    scale = Scale.times(factor)
    print("\n".join(report(run(config.load(), scale))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
