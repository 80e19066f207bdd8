"""How many feed streams (WatchFeed) one feed instance holds, and how fast a night reaches them.

A mesh of its own: one instance of each service (each consuming too). STREAMS
readers are made for the bench, not signed up: tokens signed with the mesh's key,
and their follows of the AUTHORS written into the feed's read model (the follow
path is measured elsewhere, and signing up thousands would take an argon2 hash
each). They watch over gRPC straight to the feed instance, a hundred streams a
channel (through the gateway each would be an HTTP connection of this client's
too, and the figure is the instance's).

Streams open in steps; after each, the feed process's resident memory gives the
memory per stream. With them all open the AUTHORS record a night each, one
after the other, through the gateway: a night's latency to a stream is from the
create's answer to its arrival there; every stream follows every author, so
each night makes STREAMS deliveries. This client runs on the same two cores,
so the figures are a floor. `python -m bench.watch [streams ...]` runs it alone.

Past about 2,000 open streams grpc-python's server (grpcio 1.x, asyncio) starts
cancelling new calls, a bare health server as much as the feed; so the feed
refuses watchers past ZENTRY_FEED_MAX_WATCHERS (2,000) itself, and the steps
stop there.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import psycopg
from zentry.feed.v1 import feed_service_pb2, feed_service_pb2_grpc

from bench.memory import rss_mib
from infra.config import Settings
from infra.mesh import Layout, running
from services.kit.roster import SERVICES
from services.kit.settings import TOKEN_AUDIENCE, TOKEN_ISSUER
from services.user.tokens import TokenIssuer

AUTHORS = 4
NIGHTS = 8  # recorded with every stream open, one after the other
STEPS = (250, 1000, 2000)
PER_CHANNEL = 100
PASSWORD = "bench-pass-1"
LAYOUT = Layout(dict.fromkeys(SERVICES, 1))


def run(settings: Settings, env: dict, gateway_env: dict, steps=STEPS) -> list[dict]:
    most = max(steps)
    watch_env = {**env, "ZENTRY_FEED_MAX_WATCHERS": str(most)}
    with running(settings, LAYOUT, env=watch_env, gateway_env=gateway_env) as mesh:
        [feed] = [c for c in mesh.instances if c.name.startswith("feed")]
        authors = _authors(mesh.gateway_url)
        readers = [str(uuid.uuid4()) for _ in range(most)]
        _follow(settings, readers, [author_id for author_id, _token in authors])
        private = Path(mesh.env()["ZENTRY_JWT_PRIVATE_KEY_FILE"]).read_bytes()
        issuer = TokenIssuer(private, TOKEN_ISSUER, TOKEN_AUDIENCE, timedelta(hours=2))
        tokens = [issuer.issue(reader, f"w{reader[:8]}")[0] for reader in readers]
        return asyncio.run(
            _measure(f"127.0.0.1:{feed.port}", feed.pid, tokens, authors, mesh.gateway_url, steps)
        )


def _authors(base_url: str) -> list[tuple[str, str]]:
    """AUTHORS accounts: (user id, token)."""
    found = []
    with httpx.Client(base_url=base_url, timeout=30) as api:
        for _ in range(AUTHORS):
            name = f"bench_author_{uuid.uuid4().hex[:8]}"
            body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
            user = api.post("/v1/users", json=body).raise_for_status().json()
            session = api.post("/v1/sessions", json={"username": name, "password": PASSWORD})
            found.append((user["id"], session.raise_for_status().json()["accessToken"]))
    return found


def _follow(settings: Settings, readers: list[str], authors: list[str]) -> None:
    """Every reader follows every author, in the feed's read model."""
    pairs = [(r, a) for r in readers for a in authors]
    with psycopg.connect(settings.postgres.dsn("zentry_feed"), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO follows (follower_id, followee_id) "
            "SELECT f, e FROM unnest(%s::uuid[], %s::uuid[]) AS p(f, e) ON CONFLICT DO NOTHING",
            ([f for f, _ in pairs], [e for _, e in pairs]),
        )


class Streams:
    """Open WatchFeed calls, and when each item reached each of them."""

    def __init__(self, target: str):
        self._target = target
        self._channels: list[grpc.aio.Channel] = []
        self._tasks: list[asyncio.Task] = []
        self.arrivals: dict[str, list[float]] = {}
        self.opened = 0
        self.failed: list[str] = []

    async def open(self, tokens: list[str]) -> None:
        """Each token's stream, opened; returns once each has its first message."""
        ready = []
        for token in tokens:
            if self.opened % PER_CHANNEL == 0:
                self._channels.append(grpc.aio.insecure_channel(self._target))
            stub = feed_service_pb2_grpc.FeedServiceStub(self._channels[-1])
            started = asyncio.get_running_loop().create_future()
            ready.append(started)
            self._tasks.append(asyncio.create_task(self._watch(stub, token, started)))
            self.opened += 1
        await asyncio.wait_for(asyncio.gather(*ready), 120)

    async def _watch(self, stub, token: str, started: asyncio.Future) -> None:
        call = stub.WatchFeed(
            feed_service_pb2.WatchFeedRequest(), metadata=(("authorization", f"Bearer {token}"),)
        )
        try:
            async for message in call:
                if not started.done():
                    started.set_result(None)
                if message.HasField("item"):
                    self.arrivals.setdefault(message.item.entry.id, []).append(time.monotonic())
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.failed.append(error.code().name)
            if not started.done():
                started.set_exception(error)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for channel in self._channels:
            await channel.close()


async def _measure(target, pid, tokens, authors, base_url, steps) -> list[dict]:
    rows = []
    streams = Streams(target)
    await asyncio.sleep(2)  # the instance settles after start
    idle = rss_mib(pid)
    try:
        for step in steps:
            await streams.open(tokens[streams.opened : step])
            await asyncio.sleep(1)
            rss = rss_mib(pid)
            per_stream_kib = (rss - idle) * 1024 / step
            rows.append(
                {
                    "scenario": "streams open",
                    "streams": step,
                    "feed_rss_mib": rss,
                    "kib_per_stream": round(per_stream_kib, 1),
                }
            )
            print(f"bench watch: {step} streams, feed {rss} MiB", flush=True)
        rows.append(await _deliveries(streams, authors, base_url))
        rows[-1]["failed_streams"] = len(streams.failed)
    finally:
        await streams.close()
    return rows


async def _deliveries(streams: Streams, authors, base_url: str) -> dict:
    """NIGHTS nights through the gateway; from each create's answer to each stream's item."""
    acked: dict[str, float] = {}
    origin = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as api:
        for n in range(-1, NIGHTS):  # the first, a warm-up, is not counted
            _author_id, token = authors[n % AUTHORS]
            end = origin + timedelta(hours=n + 1)
            body = {
                "startTime": (end - timedelta(minutes=40)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "endTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            response = await api.post(
                "/v1/sleepEntries", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            entry = response.raise_for_status().json()["id"]
            if n >= 0:
                acked[entry] = time.monotonic()
            await asyncio.sleep(1.0)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        len(streams.arrivals.get(entry, ())) < streams.opened for entry in acked
    ):
        await asyncio.sleep(0.2)
    latencies = sorted(
        (arrived - at) * 1000
        for entry, at in acked.items()
        for arrived in streams.arrivals.get(entry, ())
    )
    firsts = sorted(
        (min(streams.arrivals[entry]) - at) * 1000
        for entry, at in acked.items()
        if streams.arrivals.get(entry)
    )
    expected = len(acked) * streams.opened
    return {
        "scenario": "night to every stream",
        "streams": streams.opened,
        "nights": len(acked),
        "deliveries": len(latencies),
        "missing": expected - len(latencies),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1], 1) if latencies else None,
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "first_stream_ms": [round(f) for f in firsts],
    }


def report(rows: list[dict]) -> list[str]:
    """The figures as Markdown, for `make bench`'s report."""
    opened = [r for r in rows if r["scenario"] == "streams open"]
    [night] = [r for r in rows if r["scenario"] == "night to every stream"]
    return [
        "",
        "### Feed streams on one feed instance (bench.watch: a mesh of one instance of each "
        "service; gRPC clients on the same machine)",
        "",
        "| streams open | feed RSS MiB | KiB a stream |",
        "|---:|---:|---:|",
        *(f"| {r['streams']} | {r['feed_rss_mib']} | {r['kib_per_stream']} |" for r in opened),
        "",
        f"A night, from the create's answer to each of {night['streams']} streams "
        f"({night['deliveries']} deliveries, {night['missing']} missing, "
        f"{night['failed_streams']} streams failed): p50 {night['p50_ms']} ms, "
        f"p95 {night['p95_ms']} ms, max {night['max_ms']} ms; to the first stream, "
        f"per night: {night['first_stream_ms']} ms.",
    ]


def main(argv: list[str] | None = None) -> int:
    import json

    from bench.__main__ import QUIET, UNLIMITED
    from infra import config

    args = sys.argv[1:] if argv is None else argv
    steps = tuple(int(a) for a in args) or STEPS
    for row in run(config.load(), QUIET, UNLIMITED, steps):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
