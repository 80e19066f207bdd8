"""Feed benchmarks: read latency through Envoy beside a trivial RPC, fan-out, Redis memory.

1. Population (bulk events, see bench.population): `authors` ordinary authors
   and `celebrities` celebrities with `nights` nights each; `readers` readers
   registered through the gateway, each following every author and
   `followed_celebrities` of the celebrities.
2. Feed reads: GET /v1/feed (first page of 20) through Envoy at several
   concurrencies, readers in turn, beside GET /.well-known/jwks.json (GetJwks:
   an RPC that does no work) through the same gateway in the same run.
3. The celebrity curve: readers who follow every author and 0, 5 or 50
   celebrities (merged in at read time), read at concurrency 1.
4. The fan-out curve: for each of `fanout_sizes`, an ordinary author with
   that many active followers records a night; the time from publishing its
   event until every follower's timeline holds it, beside the same for an
   author with one follower.
5. Redis memory per timeline item, from MEMORY USAGE of full timelines.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from redis.asyncio import Redis

from bench import loadgen
from bench.bulk_events import BulkPublisher, wait_consumed
from infra.config import Settings
from services.feed import app
from services.feed.config import FeedSettings
from services.feed.projector import ENTRIES_GROUP, GRAPH_GROUP
from services.feed.timelines import timeline_key
from services.kit.db import Database
from services.kit.events import SLEEP_EVENTS, USER_EVENTS
from services.kit.settings import Env

# KEYS: timelines; ARGV[1]: an entry id. How many of the timelines hold it.
# KEYS: timelines; ARGV: an entry id. Those of the timelines not holding it yet.
_WAITING = """
local waiting = {}
for _, key in ipairs(KEYS) do
  if not redis.call('ZSCORE', key, ARGV[1]) then waiting[#waiting + 1] = key end
end
return waiting
"""


@dataclass(frozen=True)
class Scale:
    authors: int = 300
    celebrities: int = 50
    followed_celebrities: int = 5
    nights: int = 30
    readers: int = 20
    fanout_sizes: tuple[int, ...] = (1_000, 10_000)
    celebrity_curve: tuple[int, ...] = (0, 5, 50)
    seconds: float = 10.0
    concurrencies: tuple[int, ...] = (1, 8, 32)

    @classmethod
    def times(cls, factor: float) -> Scale:
        return cls(
            authors=max(10, int(300 * factor)),
            nights=max(5, int(30 * min(factor, 3))),
            fanout_sizes=fanout_sizes(factor),
        )


def fanout_sizes(factor: float) -> tuple[int, ...]:
    """BENCH_FANOUT (e.g. "1000,10000,100000") as it is, or 1,000 and 10,000 times the scale."""
    given = os.environ.get("BENCH_FANOUT", "")
    if given:
        return tuple(int(n) for n in given.split(","))
    return tuple(max(100, int(n * factor)) for n in (1_000, 10_000))


def run(settings: Settings, base_url: str, env: dict[str, str], scale: Scale):
    """The figures, and the readers (their tokens in a file) for the benchmarks after it."""
    publisher = BulkPublisher(settings.kafka.bootstrap_servers)
    results: dict = {
        "scale": {k: list(v) if isinstance(v, tuple) else v for k, v in scale.__dict__.items()}
    }
    tokens_file, readers, curve = _populate(settings, base_url, publisher, scale, results)
    results["reads"] = _read_load(settings, base_url, tokens_file, scale)
    results["celebrity_curve"] = _celebrity_curve(settings, base_url, curve, scale)
    feed_settings = FeedSettings.load(Env(env))
    results["fanout"] = asyncio.run(_fan_out(settings, feed_settings, publisher, scale))
    results["memory"] = asyncio.run(_memory(feed_settings, readers))
    return results, tokens_file, readers


def _populate(settings, base_url, publisher: BulkPublisher, scale: Scale, results: dict):
    count = scale.readers + len(scale.celebrity_curve)
    print(f"bench feed: registering {count} readers through the gateway", flush=True)
    everyone, all_tokens = _register_readers(base_url, count, publisher)
    readers, tokens = everyone[: scale.readers], all_tokens[: scale.readers]
    print(
        f"bench feed: publishing {scale.authors} authors and {scale.celebrities} celebrities "
        f"with {scale.nights} nights each, and the readers' follows",
        flush=True,
    )
    authors = [publisher.user(f"author_{i}") for i in range(scale.authors)]
    celebrities = [
        publisher.user(f"celebrity_{i}", celebrity=True) for i in range(scale.celebrities)
    ]
    for author in authors + celebrities:
        for day in range(scale.nights, 0, -1):
            publisher.night(author, day)
    for reader in readers:
        for author in authors + celebrities[: scale.followed_celebrities]:
            publisher.follow(reader, author)
    curve = list(zip(scale.celebrity_curve, all_tokens[scale.readers :], strict=True))
    for (followed, _token), reader in zip(curve, everyone[scale.readers :], strict=True):
        for author in authors + celebrities[:followed]:
            publisher.follow(reader, author)
    started = time.monotonic()
    publisher.flush()
    sent = publisher.sent
    seconds = wait_consumed(
        settings.kafka.bootstrap_servers,
        {GRAPH_GROUP: USER_EVENTS, ENTRIES_GROUP: SLEEP_EVENTS},
        timeout=900,
    )
    elapsed = time.monotonic() - started
    results["population"] = {
        "events": sent,
        "seconds_to_consume": round(elapsed, 1),
        "events_per_s": round(sent / elapsed, 1),
        "entries": (scale.authors + scale.celebrities) * scale.nights,
        "follows_per_reader": scale.authors + scale.followed_celebrities,
    }
    print(f"bench feed: {sent} events consumed in {elapsed:.1f} s (waited {seconds:.1f} s)")
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for token in all_tokens:  # first reads: each reader's timeline is built
            assert client.get("/v1/feed", headers={"Authorization": f"Bearer {token}"}).is_success
    tokens_file = Path(tempfile.mkstemp(prefix="zentry-bench-tokens-")[1])
    tokens_file.write_text("\n".join(tokens) + "\n")
    return tokens_file, readers, curve


def _register_readers(base_url: str, count: int, publisher: BulkPublisher):
    readers, tokens = [], []
    suffix = uuid.uuid4().hex[:8]  # new accounts each run; the rest of the population repeats
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for i in range(count):
            name = f"bench_reader_{suffix}_{i}"
            body = {"username": name, "email": f"{name}@example.com", "password": "bench-pass-1"}
            response = client.post("/v1/users", json=body)
            response.raise_for_status()
            readers.append(response.json()["id"])
            session = client.post(
                "/v1/sessions", json={"username": name, "password": "bench-pass-1"}
            )
            session.raise_for_status()
            tokens.append(session.json()["accessToken"])
    return readers, tokens


def _read_load(settings: Settings, base_url: str, tokens: Path, scale: Scale) -> list[dict]:
    rows = []
    for concurrency in scale.concurrencies:
        for name, url, auth in (
            ("trivial RPC (GetJwks)", f"{base_url}/.well-known/jwks.json", None),
            ("feed read (GetFeed)", f"{base_url}/v1/feed?pageSize=20", tokens),
        ):
            print(f"bench feed: {name} at concurrency {concurrency}", flush=True)
            result = loadgen.run(
                settings,
                url,
                concurrency=concurrency,
                seconds=scale.seconds,
                max_requests=200_000,
                tokens=auth,
            )
            rows.append({"scenario": name, **result})
    return rows


def _celebrity_curve(settings: Settings, base_url: str, curve, scale: Scale) -> list[dict]:
    rows = []
    for followed, token in curve:
        print(f"bench feed: a reader following {followed} celebrities", flush=True)
        one = Path(tempfile.mkstemp(prefix="zentry-bench-token-")[1])
        one.write_text(token + "\n")
        try:
            result = loadgen.run(
                settings,
                f"{base_url}/v1/feed?pageSize=20",
                concurrency=1,
                seconds=scale.seconds / 2,
                max_requests=50_000,
                tokens=one,
            )
        finally:
            one.unlink(missing_ok=True)
        rows.append({"celebrities": followed, **result})
    return rows


async def _fan_out(settings: Settings, feed: FeedSettings, publisher: BulkPublisher, scale: Scale):
    """Entry-to-every-timeline time for authors with each number of active followers, and one."""
    sizes = sorted(scale.fanout_sizes)
    authors = {size: publisher.user(f"fanout_author_{size}") for size in sizes}
    lone_author = publisher.user("fanout_lone_author")
    followers = [publisher.uuid() for _ in range(sizes[-1])]
    for size, author in authors.items():
        for follower in followers[:size]:
            publisher.follow(follower, author)
    publisher.flush()
    publisher.follow(followers[0], lone_author)
    publisher.flush()
    print(f"bench feed: {sum(sizes)} follows published; activating {len(followers)} followers")
    started = time.monotonic()
    wait_consumed(settings.kafka.bootstrap_servers, {GRAPH_GROUP: USER_EVENTS}, timeout=900)
    follows_s = time.monotonic() - started
    db = Database(feed.service.postgres_dsn)
    redis = app.redis_client(feed.service.redis)
    try:
        _timelines, _projector, reader = app.parts(feed, db, redis)
        gate = asyncio.Semaphore(16)

        async def first_read(follower: str) -> None:
            async with gate:
                await reader.page(follower, None, 20)  # what a first read does: rebuild, activate

        started = time.monotonic()
        await asyncio.gather(*(first_read(f) for f in followers))
        activation_s = time.monotonic() - started
        waiting = redis.register_script(_WAITING)
        keys = [timeline_key(f) for f in followers]
        curve = []
        for size in sizes:
            print(f"bench feed: fan-out to {size} followers", flush=True)
            runs = [
                await _time_to_all(publisher, waiting, authors[size], keys[:size]) for _ in range(3)
            ]
            curve.append(
                {
                    "followers": size,
                    "seconds": [round(s, 3) for s in runs],
                    "median_s": round(statistics.median(runs), 3),
                    "followers_per_s": round(size / statistics.median(runs)),
                }
            )
        one = [await _time_to_all(publisher, waiting, lone_author, keys[:1]) for _ in range(3)]
    finally:
        await redis.aclose()
        await db.dispose()
    return {
        "curve": curve,
        "one_follower_seconds": [round(s, 3) for s in one],
        "one_follower_median_s": round(statistics.median(one), 3),
        "follow_events_per_s": round(sum(sizes) / follows_s),
        "activation_s": round(activation_s, 1),
    }


async def _time_to_all(publisher: BulkPublisher, waiting, author: str, keys: list[str]) -> float:
    """Seconds from publishing an entry until every timeline of `keys` holds it. Each check
    asks only about the timelines still without it, so checking costs Redis little."""
    started = time.monotonic()
    entry_id = publisher.night(author, days_ago=0, fresh=True)
    publisher.flush()
    while True:
        keys = [key.decode() for key in await waiting(keys, [entry_id])]
        if not keys:
            return time.monotonic() - started
        if time.monotonic() - started > 60:
            raise TimeoutError(f"entry {entry_id} did not reach {len(keys)} timelines in 60 s")
        await asyncio.sleep(0.01)


async def _memory(feed: FeedSettings, readers: list[str]) -> dict:
    redis = Redis.from_url(feed.service.redis.url())
    try:
        sizes, bytes_used, encodings = [], [], set()
        for reader in readers:
            key = timeline_key(reader)
            card = await redis.zcard(key)
            if card > 1:
                sizes.append(card - 1)
                bytes_used.append(await redis.memory_usage(key, samples=0))
                encodings.add((await redis.object("encoding", key)).decode())
        items = sum(sizes)
        return {
            "timelines": len(sizes),
            "items": items,
            "bytes_per_item": round(sum(bytes_used) / items, 1) if items else None,
            "encoding": sorted(encodings),
        }
    finally:
        await redis.aclose()
