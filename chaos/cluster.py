"""The mesh a chaos run strikes: its processes and servers, and each fault done to them.

Instances are children of this process (infra.mesh, layout CHAOS: two API
and two consumer instances of each service that consumes), so a run stops
exactly what it started. Every fault ends with the mesh whole again: a killed
or stopped instance is replaced by a new one, a stopped server is started,
and the call returns once the replacement serves (healthy, and routed by
Envoy if it serves the API).
"""

from __future__ import annotations

import signal
import time

from redis import Redis

from chaos.network import Network
from chaos.redis_ha import RedisHA
from gateway.config import NO_CLIENT_LIMITS
from infra import lifecycle
from infra.config import Settings
from infra.mesh import CHAOS, Child, Mesh

#: Quick enough to heal within a short run.
#: Celebrity thresholds low enough that follows promote and demote authors during a run.
ENV = {
    "ZENTRY_DRAIN_DELAY": "0.5",
    "ZENTRY_SHUTDOWN_GRACE": "5",
    "ZENTRY_CELEBRITY_THRESHOLD": "3",
    "ZENTRY_CELEBRITY_RELEASE_BELOW": "2",
    "ZENTRY_FEED_TIMELINE_LENGTH": "10",
}


class Cluster:
    """`redis_ha`: the instances use a Redis primary, replica and Sentinels of the run's own
    (chaos.redis_ha) rather than the local Redis behind its proxy."""

    def __init__(self, settings: Settings, redis_ha: bool = False):
        self.settings = settings
        self.mesh = Mesh(settings)
        self.network = Network(settings)
        self.redis_ha = RedisHA(settings, self.mesh) if redis_ha else None
        self.env = dict(ENV)

    @property
    def base_url(self) -> str:
        return self.mesh.gateway_url

    def start(self) -> None:
        """Servers, Toxiproxy, the endpoint feed and every instance; returns once the
        gateway serves them all (`Mesh.wait_ready`)."""
        lifecycle.up(self.settings, lifecycle.servers(self.settings))
        self.mesh.start_process("toxiproxy", self.network.command())
        self.network.wait_ready()
        self.env.update(self.network.create())  # every instance goes through the proxies
        if self.redis_ha is not None:
            self.env.update(self.redis_ha.start())
        # The load comes from one address: no per-client limits at the gateway.
        self.mesh.start(CHAOS, env=self.env, gateway_env=NO_CLIENT_LIMITS)
        self.mesh.wait_ready()

    def stop(self) -> None:
        self.mesh.stop_all()

    # -- faults ------------------------------------------------------------------------

    def strike(self, service: str, role: str, sig: signal.Signals) -> str:
        """Signal the first instance of `service` in `role`, wait for it, start another."""
        victim = next(c for c in self.mesh.instances if (c.service, c.role) == (service, role))
        code = self.mesh.stop(victim, sig, timeout=20)
        self.mesh.wait_serving([self._start(service, role)])
        return f"{sig.name} {victim.name} ({role}), exit {code}; replaced"

    def strike_every(self, service: str, role: str, sig: signal.Signals) -> str:
        """Signal every instance of `service` in `role` at once (the one relaying the outbox
        among them, likely with a batch published but not yet deleted), then replace them."""
        victims = [c for c in self.mesh.instances if (c.service, c.role) == (service, role)]
        for victim in victims:
            victim.process.send_signal(sig)
        codes = [self.mesh.stop(victim, sig, timeout=20) for victim in victims]
        self.mesh.wait_serving([self._start(service, role) for _ in victims])
        return f"{sig.name} every {service} {role} instance at once, exits {codes}; replaced"

    def restart_server(self, name: str) -> str:
        """Stop one of the servers and start it again (its data stays)."""
        chosen = lifecycle.servers(self.settings, [name])
        started = time.monotonic()
        lifecycle.down(self.settings, chosen)
        lifecycle.up(self.settings, chosen)
        return f"restarted {name} in {time.monotonic() - started:.1f} s"

    def network_fault(self, proxy: str, toxic: str) -> str:
        return self.network.strike(proxy, toxic)

    def fail_redis_primary(self) -> str:
        """SIGKILL the HA Redis's primary; returns once the Sentinels have promoted its replica
        and the old primary is back as the new one's replica."""
        assert self.redis_ha is not None, "the failover profile runs a Redis of its own"
        return self.redis_ha.fail_primary()

    def flush_redis(self) -> str:
        client = Redis.from_url(self.settings.redis.url())
        try:
            client.flushall()
        finally:
            client.close()
        return "FLUSHALL on Redis"

    def died(self) -> list[str]:
        """Processes that died by themselves (not by a fault): a run with any has failed."""
        return [c.name for c in self.mesh.children if not c.alive()]

    # -- instances ---------------------------------------------------------------------

    def _start(self, service: str, role: str) -> Child:
        """One more instance as the layout starts them (a consumer on a free port)."""
        return self.mesh.start_service(service, 0, self.env, role=role)
