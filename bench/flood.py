"""A log-in flood from many addresses while one ordinary user goes on as usual.

The flood: wrong passwords for a real account and log-ins under random names
(each still costs a password hash), from FLOOD_ADDRESSES loopback addresses
at once. The ordinary user, from an address of their own, logs in and reads
their feed in a loop, first alone (quiet), then during the flood. Printed: the
ordinary user's p50/p95 both times, how the flood was answered, and the user
service instances' peak memory beside the limit Kubernetes gives them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import httpx

from bench.memory import PeakRss

FLOOD_ADDRESSES = 48  # 127.0.1.1 and on
FLOOD_CONCURRENCY = 96
USER_ADDRESS = "127.0.2.1"
PASSWORD = "bench-pass-1"
#: The user service's memory limit in k8s/base/services/user.yaml.
MEMORY_LIMIT_MIB = 512


@dataclass(frozen=True)
class Scale:
    seconds: float = 20.0

    @classmethod
    def times(cls, factor: float) -> Scale:
        return cls(seconds=max(5.0, 20.0 * min(factor, 3.0)))


def run(base_url: str, user_pids: dict[str, int], scale: Scale) -> dict:
    return asyncio.run(_run(base_url, user_pids, scale))


async def _run(base_url: str, user_pids: dict[str, int], scale: Scale) -> dict:
    async with _client(base_url, USER_ADDRESS) as client:
        ordinary = await _account(client, "flood_user")
        target = await _account(client, "flood_target")
    print("bench flood: the ordinary user alone", flush=True)
    quiet = await _ordinary(base_url, ordinary, scale.seconds)
    print(f"bench flood: {FLOOD_ADDRESSES} addresses flooding log-ins", flush=True)
    stop = asyncio.Event()
    with PeakRss(user_pids) as peak:
        flood = asyncio.gather(
            *(_flooder(base_url, n, target, stop) for n in range(FLOOD_CONCURRENCY))
        )
        loaded = await _ordinary(base_url, ordinary, scale.seconds)
        stop.set()
        answers = sum(await flood, Counter())
    return {
        "seconds": scale.seconds,
        "addresses": FLOOD_ADDRESSES,
        "concurrency": FLOOD_CONCURRENCY,
        "quiet": quiet,
        "flooded": loaded,
        "flood_answers": dict(sorted(answers.items())),
        "user_rss_peak_mib": peak.peak,
        "user_memory_limit_mib": MEMORY_LIMIT_MIB,
    }


def _client(base_url: str, address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=30)


async def _account(client: httpx.AsyncClient, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    (await client.post("/v1/users", json=body)).raise_for_status()
    return name


async def _ordinary(base_url: str, name: str, seconds: float) -> dict:
    """Log in, read the feed twice, again and again: latency of each kind of call."""
    logins, reads, failed = [], [], 0
    async with _client(base_url, USER_ADDRESS) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = await client.post(
                "/v1/sessions", json={"username": name, "password": PASSWORD}
            )
            logins.append(time.monotonic() - started)
            if response.status_code != 200:
                failed += 1
                continue
            auth = {"Authorization": f"Bearer {response.json()['accessToken']}"}
            for _ in range(2):
                started = time.monotonic()
                read = await client.get("/v1/feed", headers=auth, params={"pageSize": 20})
                reads.append(time.monotonic() - started)
                failed += read.status_code != 200
    return {"log_in": _percentiles(logins), "feed_read": _percentiles(reads), "failed": failed}


async def _flooder(base_url: str, n: int, target: str, stop: asyncio.Event) -> Counter:
    """Wrong passwords for the target and random names, alternately, until `stop`."""
    answers: Counter = Counter()
    address = f"127.0.1.{1 + n % FLOOD_ADDRESSES}"
    async with _client(base_url, address) as client:
        for sent in range(1_000_000):
            if stop.is_set():
                break
            name = target if sent % 2 else f"nobody_{uuid.uuid4().hex[:12]}"
            try:
                response = await client.post(
                    "/v1/sessions", json={"username": name, "password": "wrong-pass-1"}
                )
                answers[str(response.status_code)] += 1
            except httpx.HTTPError as error:
                answers[type(error).__name__] += 1
    return answers


def _percentiles(seconds: list[float]) -> dict:
    if not seconds:
        return {"count": 0}
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"count": len(ordered), "p50_ms": at(0.5), "p95_ms": at(0.95)}
