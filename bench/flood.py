"""A log-in flood from many addresses while ordinary users go on as usual.

The flood (the Go load generator, so that sending it costs little): wrong
passwords for a real account and log-ins under random names, from
FLOOD_ADDRESSES loopback addresses at once, FLOOD_RATE a second in all (this
machine's two cores also run the generator and the gateway: an unbounded
flood measures only how fast Envoy says 429). The generator runs at the lowest
CPU priority: an attacker's machines are not the mesh's, so it takes only what
the mesh leaves idle, and still sends its whole rate (the answers printed
count it). ORDINARY_USERS people, each from an address of their own, log in
every LOG_IN_EVERY seconds and read their feed every READ_EVERY seconds in
between, first alone (quiet), then during the flood;
there are several so that a p95 of log-ins rests on some fifty of them, not on
the slowest of a dozen. Printed: their p50/p95 both times, how the flood was
answered, and the user service instances' peak memory beside the limit Kubernetes
gives them.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import loadgen
from bench.memory import PeakRss
from infra.config import Settings

FLOOD_ADDRESSES = 48  # 127.0.1.1 and on
FLOOD_CONCURRENCY = 96
FLOOD_RATE = 1000
ORDINARY_USERS = 4  # from 127.0.2.1 and on
PASSWORD = "bench-pass-1"
#: Seconds between one ordinary user's log-ins: within the gateway's 20 a minute an address.
LOG_IN_EVERY = 3.5
#: Seconds between one ordinary user's feed reads: a person scrolling, not a load generator
#: (users that read without pause would fill both cores themselves, and measure only that).
READ_EVERY = 0.1
#: The user service's memory limit in k8s/base/services/user.yaml.
MEMORY_LIMIT_MIB = 512


@dataclass(frozen=True)
class Scale:
    seconds: float = 45.0  # a dozen log-ins of each ordinary user each time

    @classmethod
    def times(cls, factor: float) -> Scale:
        return cls(seconds=max(45.0, 45.0 * min(factor, 3.0)))


def run(settings: Settings, base_url: str, user_pids: dict[str, int], scale: Scale) -> dict:
    return asyncio.run(_run(settings, base_url, user_pids, scale))


async def _run(settings: Settings, base_url: str, user_pids: dict[str, int], scale: Scale) -> dict:
    addresses = [f"127.0.2.{n}" for n in range(1, ORDINARY_USERS + 1)]
    ordinary = []
    for address in addresses:  # each signs up from home (the gateway allows a few an address)
        async with _client(base_url, address) as client:
            ordinary.append(await _account(client, "flood_user"))
    async with _client(base_url, addresses[0]) as client:
        target = await _account(client, "flood_target")
    people = list(zip(ordinary, addresses, strict=True))
    print(f"bench flood: {ORDINARY_USERS} ordinary users alone", flush=True)
    quiet = await _ordinary(base_url, people, scale.seconds)
    print(f"bench flood: {FLOOD_ADDRESSES} addresses flooding log-ins", flush=True)
    with PeakRss(user_pids) as peak:
        floods = [
            asyncio.to_thread(_flood, settings, base_url, body, scale.seconds)
            for body in (
                {"username": target, "password": "wrong-pass-1"},
                {"username": "nobody_{{random}}", "password": "wrong-pass-1"},
            )
        ]
        loaded, *answers = await asyncio.gather(_ordinary(base_url, people, scale.seconds), *floods)
    statuses: Counter = Counter()
    for answer in answers:
        statuses.update(answer["statuses"])
    return {
        "seconds": scale.seconds,
        "addresses": FLOOD_ADDRESSES,
        "concurrency": FLOOD_CONCURRENCY,
        "ordinary_users": ORDINARY_USERS,
        "quiet": quiet,
        "flooded": loaded,
        "flood_answers": dict(sorted(statuses.items())),
        "user_rss_peak_mib": peak.peak,
        "user_memory_limit_mib": MEMORY_LIMIT_MIB,
    }


def _flood(settings: Settings, base_url: str, body: dict, seconds: float) -> dict:
    """Log-ins with `body` (a loadgen template) from every flood address, half the flooders."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(body, file)
    try:
        return loadgen.run(
            settings,
            f"{base_url}/v1/sessions",
            method="POST",
            body=Path(file.name),
            headers={"Content-Type": "application/json"},
            concurrency=FLOOD_CONCURRENCY // 2,
            seconds=seconds,
            max_requests=2_000_000,
            rate=FLOOD_RATE / 2,
            sources=[f"127.0.1.{n}" for n in range(1, FLOOD_ADDRESSES + 1)],
            nice=19,
        )
    finally:
        Path(file.name).unlink(missing_ok=True)


def _client(base_url: str, address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=30)


async def _account(client: httpx.AsyncClient, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    (await client.post("/v1/users", json=body)).raise_for_status()
    return name


async def _ordinary(base_url: str, people: list[tuple[str, str]], seconds: float) -> dict:
    """Every (name, address) at once: latency of each kind of call, over all of them."""
    logins: list[float] = []
    reads: list[float] = []
    failed = sum(
        await asyncio.gather(
            *(
                _person(
                    base_url, name, address, seconds, n * LOG_IN_EVERY / len(people), logins, reads
                )
                for n, (name, address) in enumerate(people)
            )
        )
    )
    return {"log_in": _percentiles(logins), "feed_read": _percentiles(reads), "failed": failed}


async def _person(
    base_url: str,
    name: str,
    address: str,
    seconds: float,
    offset: float,
    logins: list,
    reads: list,
) -> int:
    """After `offset` seconds (people do not log in in step), log in every LOG_IN_EVERY
    seconds (as often as the gateway lets one address) and read the feed every READ_EVERY
    seconds in between; latencies go to `logins` and `reads`. Returns how many calls
    failed."""
    failed = 0
    async with _client(base_url, address) as client:
        deadline = time.monotonic() + seconds
        await asyncio.sleep(offset)
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = await client.post(
                "/v1/sessions", json={"username": name, "password": PASSWORD}
            )
            logins.append(time.monotonic() - started)
            if response.status_code != 200:
                failed += 1
                await asyncio.sleep(LOG_IN_EVERY)
                continue
            auth = {"Authorization": f"Bearer {response.json()['accessToken']}"}
            until = started + LOG_IN_EVERY
            while time.monotonic() < min(until, deadline):
                began = time.monotonic()
                read = await client.get("/v1/feed", headers=auth, params={"pageSize": 20})
                reads.append(time.monotonic() - began)
                failed += read.status_code != 200
                await asyncio.sleep(max(0.0, began + READ_EVERY - time.monotonic()))
    return failed


def _percentiles(seconds: list[float]) -> dict:
    if not seconds:
        return {"count": 0}
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"count": len(ordered), "p50_ms": at(0.5), "p95_ms": at(0.95)}


def main() -> int:
    """`python -m bench.flood`: this scenario alone, on a mesh of its own (what `make bench`
    runs last, with every other scenario)."""
    from infra import config
    from infra.mesh import FLOOD, running

    settings = config.load()
    with running(settings, FLOOD, env={"ZENTRY_LOG_LEVEL": "WARNING"}) as mesh:
        users = {c.name: c.pid for c in mesh.instances if c.service == "user"}
        print(json.dumps(run(settings, mesh.gateway_url, users, Scale()), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
