"""The mesh a chaos run strikes: its processes and servers, and each fault done to them.

Instances are children of this process (infra.mesh), so a run stops exactly
what it started. Every fault ends with the mesh whole again: a killed or
stopped instance is replaced by a new one, a stopped server is started, and
the call returns once the replacement answers.
"""

from __future__ import annotations

import signal
import socket
import time
from dataclasses import dataclass

import httpx
from redis import Redis

from chaos.network import Network
from gateway.config import NO_CLIENT_LIMITS
from infra import lifecycle
from infra.config import Settings
from infra.mesh import SERVICES, Child, Mesh
from infra.processes import wait_until
from services.kit.healthcheck import check

#: Services whose events other services consume run their consumers apart (ZENTRY_ROLE).
CONSUMING = ("sleep", "feed", "leaderboard", "analytics")
#: Quick enough to heal within a short run.
#: Celebrity thresholds low enough that follows promote and demote authors during a run.
ENV = {
    "ZENTRY_DRAIN_DELAY": "0.5",
    "ZENTRY_SHUTDOWN_GRACE": "5",
    "ZENTRY_CELEBRITY_THRESHOLD": "3",
    "ZENTRY_CELEBRITY_RELEASE_BELOW": "2",
    "ZENTRY_FEED_TIMELINE_LENGTH": "10",
}


@dataclass
class Instance:
    service: str
    role: str  # "api" or "consumer" (or "all" for a service without consumers)
    child: Child
    health_port: int = 0  # a consumer's health-only port


class Cluster:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.mesh = Mesh(settings)
        self.network = Network(settings)
        self.instances: list[Instance] = []
        self.env = dict(ENV)

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.envoy.host}:{self.settings.envoy.gateway_port}"

    def start(self) -> None:
        """Servers, the endpoint feed, and every instance; returns once the gateway routes."""
        lifecycle.up(self.settings, lifecycle.servers(self.settings))
        self.mesh.start_process("toxiproxy", self.network.command())
        self.network.wait_ready()
        self.env.update(self.network.create())  # every instance goes through the proxies
        self.mesh.start_feed(NO_CLIENT_LIMITS)  # the load comes from one address
        for service in SERVICES:
            roles = ("api", "consumer") if service in CONSUMING else ("all",)
            for role in roles:
                for _ in range(2):
                    self._start(service, role)
        for instance in list(self.instances):
            self._wait(instance)
        wait_until(
            lambda: httpx.get(
                f"{self.base_url}/.well-known/jwks.json", timeout=2
            ).raise_for_status(),
            what="the gateway routing to the user service",
            timeout=60,
            log_file=self.settings.log_file("envoy"),
        )

    def stop(self) -> None:
        self.mesh.stop_all()

    # -- faults ------------------------------------------------------------------------

    def strike(self, service: str, role: str, sig: signal.Signals) -> str:
        """Signal the first instance of `service` in `role`, wait for it, start another."""
        victim = next(i for i in self.instances if i.service == service and i.role == role)
        self.instances.remove(victim)
        code = self.mesh.stop(victim.child, sig, timeout=20)
        self._wait(self._start(service, role))
        return f"{sig.name} {victim.child.name} ({role}), exit {code}; replaced"

    def strike_every(self, service: str, role: str, sig: signal.Signals) -> str:
        """Signal every instance of `service` in `role` at once (the one relaying the outbox
        among them, likely with a batch published but not yet deleted), then replace them."""
        victims = [i for i in self.instances if i.service == service and i.role == role]
        for victim in victims:
            victim.child.process.send_signal(sig)
        codes = [self.mesh.stop(v.child, sig, timeout=20) for v in victims]
        for victim in victims:
            self.instances.remove(victim)
        for instance in [self._start(service, role) for _ in victims]:
            self._wait(instance)
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

    def flush_redis(self) -> str:
        client = Redis(host=self.settings.redis.host, port=self.settings.redis.port)
        try:
            client.flushall()
        finally:
            client.close()
        return "FLUSHALL on Redis"

    def died(self) -> list[str]:
        """Processes that died by themselves (not by a fault): a run with any has failed."""
        return [c.name for c in self.mesh.children if not c.alive()]

    # -- instances ---------------------------------------------------------------------

    def _start(self, service: str, role: str) -> Instance:
        env = {**self.env, "ZENTRY_ROLE": role}
        health_port = 0
        if role == "consumer":
            health_port = free_port()
            child = self.mesh.start_service(service, health_port, env)
        else:
            child = self.mesh.start_service(service, 0, env)
        instance = Instance(service, role, child, health_port)
        self.instances.append(instance)
        return instance

    def _wait(self, instance: Instance) -> None:
        if instance.role != "consumer":
            self.mesh.wait_healthy(instance.child, timeout=90)
            return

        def serving() -> None:
            if check(f"127.0.0.1:{instance.health_port}") != "SERVING":
                raise RuntimeError(f"{instance.child.name} is not serving yet")

        wait_until(
            serving,
            what=f"{instance.child.name} serving its health check",
            timeout=90,
            log_file=instance.child.log,
            exit_code=instance.child.process.poll,
        )


def free_port() -> int:
    """A port nothing listens on now (for a consumer's health-only server)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
