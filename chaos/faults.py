"""The faults of a run, spread over its length: every kind at least `rounds` times.

A fault is a name and what it does to the cluster; the schedule interleaves
process faults (SIGKILL, SIGTERM) of every service's API and consumer
instances with server restarts, a Redis flush and network faults (latency,
reset connections, a blackhole) on the way to each server, in an order
shuffled by the run's seed, spaced evenly from a warm-up to a little before
the end of the load. They strike one at a time, each returning once the mesh
is whole again (a network fault once its toxic is taken away), so a schedule
whose faults take longer than their spacing runs on past the load.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable
from dataclasses import dataclass

from chaos.cluster import Cluster
from chaos.network import TOXICS
from services.kit.roster import CONSUMING


@dataclass(frozen=True)
class Fault:
    name: str
    strike: Callable[[Cluster], str]


def every_fault() -> list[Fault]:
    faults = []
    for service in ("user", *CONSUMING):
        api = "api" if service in CONSUMING else "all"
        faults.append(
            Fault(
                f"SIGKILL {service} {api}",
                lambda c, s=service, r=api: c.strike(s, r, signal.SIGKILL),
            )
        )
        if service in CONSUMING:
            faults.append(
                Fault(
                    f"SIGKILL {service} consumer",
                    lambda c, s=service: c.strike(s, "consumer", signal.SIGKILL),
                )
            )
    for service, role in (("sleep", "api"), ("user", "all")):  # the outbox relays
        faults.append(
            Fault(
                f"SIGKILL every {service} {role}",
                lambda c, s=service, r=role: c.strike_every(s, r, signal.SIGKILL),
            )
        )
    faults.append(Fault("SIGTERM sleep api", lambda c: c.strike("sleep", "api", signal.SIGTERM)))
    faults.append(
        Fault("SIGTERM feed consumer", lambda c: c.strike("feed", "consumer", signal.SIGTERM))
    )
    for server in ("redis", "postgres", "pgbouncer", "kafka", "consul"):
        faults.append(Fault(f"restart {server}", lambda c, s=server: c.restart_server(s)))
    faults.append(Fault("flush redis", lambda c: c.flush_redis()))
    for proxy in ("postgres", "redis", "kafka"):
        for toxic in TOXICS:
            faults.append(
                Fault(f"{toxic} {proxy}", lambda c, p=proxy, t=toxic: c.network_fault(p, t))
            )
    return faults


def redis_failovers() -> list[Fault]:
    """The failover profile's: the Redis primary dies (twice a round), and a consumer of each
    read model in Redis with it once, so a failover meets a rebalance."""
    fail = Fault("SIGKILL Redis primary", lambda c: c.fail_redis_primary())
    return [
        fail,
        fail,
        Fault("SIGKILL feed consumer", lambda c: c.strike("feed", "consumer", signal.SIGKILL)),
        Fault(
            "SIGKILL leaderboard consumer",
            lambda c: c.strike("leaderboard", "consumer", signal.SIGKILL),
        ),
    ]


#: CHAOS_PROFILE: which faults a run strikes.
PROFILES = {"standard": every_fault, "redis-failover": redis_failovers}


def schedule(
    seconds: float, seed: int, rounds: int, profile: str = "standard"
) -> list[tuple[float, Fault]]:
    """(seconds after the load starts, fault), in order; each fault `rounds` times."""
    faults = PROFILES[profile]() * rounds
    random.Random(seed).shuffle(faults)
    first, last = min(10.0, seconds * 0.1), seconds * 0.85
    step = (last - first) / max(1, len(faults) - 1)
    return [(first + i * step, fault) for i, fault in enumerate(faults)]
