"""The feed's two consumer groups alone, one runner each, from topic to committed read model.

`python -m bench.feed_consumers` (the servers of `make infra-up`, no mesh), and
a part of `make bench`. On a scratch pair of topics, a database and a Redis
database (bench.scratch):

1. `authors` authors and `readers` readers register (the graph group applies
   the profiles), and every reader reads once: active, with a timeline.
2. Each reader follows `follows` authors: the graph group's rate, each follow
   backfilling the reader's timeline.
3. Each author records `nights` nights: the entries group's rate, each night
   fanned out to the author's active followers.
4. The feed's replay (services.feed.replay) over the same events.

Each phase's figures: events/s, and the CPU milliseconds an event cost this
process (the runner), PostgreSQL and Redis (bench.cpu).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass

from bench.bulk_events import BulkPublisher
from bench.cpu import CpuMeter, server_pids
from bench.scratch import scratch
from infra import config
from infra.config import Settings
from infra.mesh import Mesh
from services.feed import app
from services.feed import replay as feed_replay
from services.feed.config import FeedSettings
from services.kit.consumer import ConsumerRunner
from services.kit.db import Database, migrate
from services.kit.settings import Env


@dataclass(frozen=True)
class Scale:
    authors: int = 500
    readers: int = 2000
    follows: int = 10  # authors each reader follows
    nights: int = 20  # nights each author records

    @classmethod
    def times(cls, factor: float) -> Scale:
        return cls(authors=max(50, int(500 * factor)), readers=max(200, int(2000 * factor)))


def run(settings: Settings, env: dict[str, str], scale: Scale) -> dict:
    return asyncio.run(_measure(settings, FeedSettings.load(Env(env)), scale))


async def _measure(settings: Settings, feed: FeedSettings, scale: Scale) -> dict:
    bootstrap = settings.kafka.bootstrap_servers
    roots = {"runner": os.getpid(), **server_pids(settings.run_dir)}
    roots = {name: roots[name] for name in ("runner", "postgres", "redis") if name in roots}
    with scratch(settings, f"bench-feed-{uuid.uuid4().hex[:8]}", topics=2) as place:
        user_topic, sleep_topic = place.topics
        names = {
            "user_topic": user_topic,
            "sleep_topic": sleep_topic,
            "groups": (f"{user_topic}.graph", f"{sleep_topic}.entries"),
        }
        await asyncio.to_thread(migrate, place.dsn, app.MIGRATIONS)
        db, redis = Database(place.dsn), app.redis_client(place.redis_url)
        await redis.flushdb()
        publisher = BulkPublisher(bootstrap, seed=3, user_topic=user_topic, sleep_topic=sleep_topic)
        _timelines, projector, reader = app.parts(feed, db, redis)
        graph, entries = app.consumers(db, projector, bootstrap, **names)
        tasks = [asyncio.create_task(r.run()) for r in (graph, entries)]
        try:
            authors = [publisher.user(f"author_{i}") for i in range(scale.authors)]
            readers = [publisher.user(f"reader_{i}") for i in range(scale.readers)]
            publisher.flush()
            await _until(graph, len(authors) + len(readers), tasks)
            print(f"bench feed consumers: {len(readers)} readers read once", flush=True)
            gate = asyncio.Semaphore(16)

            async def first_read(user: str) -> None:
                async with gate:
                    await reader.page(user, None, 20)

            await asyncio.gather(*(first_read(r) for r in readers))
            phases = {}

            def follows():
                for r in readers:
                    for author in publisher.random.sample(authors, scale.follows):
                        publisher.follow(r, author)

            phases["follows"] = await _phase(publisher, graph, follows, roots, tasks)

            def nights():
                for day in range(scale.nights, 0, -1):
                    for author in authors:
                        publisher.night(author, day)

            phases["nights"] = await _phase(publisher, entries, nights, roots, tasks)
        finally:
            for runner in (graph, entries):
                runner.stop()
            await asyncio.gather(*tasks)
        print("bench feed consumers: replaying the feed's read models", flush=True)
        meter = CpuMeter(roots).start()
        report = await feed_replay.replay(
            feed, dsn=place.dsn, redis=place.redis_url, bootstrap=bootstrap, **names
        )
        phases["replay"] = _figures(report.events, report.seconds, meter.stop(), 0)
        await redis.flushdb()
        await redis.aclose()
        await db.dispose()
    return {"scale": scale.__dict__, **phases}


async def _phase(publisher: BulkPublisher, runner: ConsumerRunner, publish, roots, tasks) -> dict:
    """Publish, then wait until `runner` has handled it all; its figures."""
    before, batches = runner.applied + runner.skipped + runner.dead_lettered, runner.batches
    sent = publisher.sent
    meter = CpuMeter(roots).start()
    started = time.monotonic()
    publish()
    publisher.flush()
    events = publisher.sent - sent
    await _until(runner, before + events, tasks)
    seconds = time.monotonic() - started
    return _figures(events, seconds, meter.stop(), runner.batches - batches)


def _figures(events: int, seconds: float, cpu: dict[str, float], batches: int) -> dict:
    print(f"bench feed consumers: {events} events in {seconds:.1f} s", flush=True)
    return {
        "events": events,
        "seconds": round(seconds, 2),
        "events_per_s": round(events / seconds),
        "batches": batches,
        "cpu_ms_per_event": {name: round(s * 1000 / events, 3) for name, s in cpu.items()},
    }


async def _until(runner: ConsumerRunner, handled: int, tasks, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while runner.applied + runner.skipped + runner.dead_lettered < handled:
        for task in tasks:
            if task.done():
                task.result()  # a runner that failed says why
        if time.monotonic() > deadline:
            raise TimeoutError(f"{runner.group}: {handled} events not handled in {timeout:.0f} s")
        await asyncio.sleep(0.02)


def main() -> int:
    settings = config.load()
    factor = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    results = run(settings, Mesh(settings).env(), Scale.times(factor))
    for phase in ("follows", "nights", "replay"):
        r = results[phase]
        print(
            f"{phase}: {r['events']} events, {r['events_per_s']} events/s, "
            f"{r['batches']} batches, CPU ms an event {r['cpu_ms_per_event']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
