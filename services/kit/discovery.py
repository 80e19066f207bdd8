"""Consul: registering an instance, and following the healthy instances of a service.

Registration uses Consul's native gRPC health check against the standard
health service, so an instance that dies or reports NOT_SERVING turns critical
within `CHECK_INTERVAL` and drops out of `watch_healthy` answers. The check asks
for the health of the instance itself, by its id (which the instance serves as
a health "service" name, services.kit.boot): ports are reused, and a process
that later listens on a killed instance's port, of whatever service, must not
pass for it and be sent that service's calls. Watching uses
Consul blocking queries: an answer comes back as soon as the set changes.

Under mutual TLS (services.kit.tls) Consul's agent could only ask over TLS with
a client certificate of the mesh's CA, which it does not hold, and should not
reach the pods at all. So the check is a TTL check instead (`self_checked`):
the instance asks itself the same question (services.kit.heartbeat) over its
own TLS port at the address it registered, and reports the answer; a process
that dies or hangs stops reporting and turns critical after `CHECK_TTL`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import httpx

from services.kit import tls as kit_tls
from services.kit.settings import ConfigError, TlsFiles

_log = logging.getLogger(__name__)

CHECK_INTERVAL = "1s"
CHECK_TIMEOUT = "1s"
#: A self-checked instance that has not reported for this long is critical (it reports each
#: services.kit.heartbeat.INTERVAL seconds).
CHECK_TTL = "3s"
# A SIGKILLed instance never deregisters itself; Consul reaps it after this.
DEREGISTER_CRITICAL_AFTER = "1m"
BLOCKING_WAIT = "30s"
#: Seconds between a Balancer's looks at its TLS files for a renewal.
RENEWAL_LOOK = 30.0


@dataclass(frozen=True, order=True)
class Instance:
    """One healthy instance of a service, as Consul's catalog knows it."""

    address: str
    port: int
    instance_id: str = ""

    @property
    def target(self) -> str:
        return f"{self.address}:{self.port}"


def check_id(instance_id: str) -> str:
    """The id of an instance's Consul check."""
    return f"{instance_id}:grpc-health"


class Consul:
    """The few Consul agent HTTP calls Zentry makes."""

    def __init__(self, url: str, token: str = ""):
        """`token`: the ACL token every call carries (ZENTRY_CONSUL_TOKEN); a service's may
        register and deregister that service only, and read the catalog."""
        self._http = httpx.AsyncClient(
            base_url=url,
            timeout=httpx.Timeout(5.0, read=40.0),
            headers={"X-Consul-Token": token} if token else None,
        )

    async def register(
        self,
        service: str,
        instance_id: str,
        address: str,
        port: int,
        tags: tuple[str, ...] = (),
        metrics_port: int = 0,
        self_checked: bool = False,
    ) -> None:
        """Register (or re-register) an instance with a gRPC health check of `instance_id`
        (the instance must report it SERVING, as boot does); idempotent. `metrics_port`,
        if any, goes into its metadata, where Prometheus' Consul discovery finds it.
        `self_checked`: a TTL check instead, critical until the instance `report`s."""
        meta = {"protocol": "grpc"}
        if metrics_port:
            meta["metrics_port"] = str(metrics_port)
        body = {
            "ID": instance_id,
            "Name": service,
            "Address": address,
            "Port": port,
            "Tags": list(tags),
            "Meta": meta,
            "Check": {
                "CheckID": check_id(instance_id),
                "Name": "gRPC health",
                "GRPC": f"{address}:{port}/{instance_id}",
                "GRPCUseTLS": False,
                "Interval": CHECK_INTERVAL,
                "Timeout": CHECK_TIMEOUT,
                "DeregisterCriticalServiceAfter": DEREGISTER_CRITICAL_AFTER,
            },
        }
        if self_checked:
            body["Check"] = {
                "CheckID": check_id(instance_id),
                "Name": "gRPC health (mutual TLS, reported by the instance)",
                "TTL": CHECK_TTL,
                "Status": "critical",
                "DeregisterCriticalServiceAfter": DEREGISTER_CRITICAL_AFTER,
            }
        response = await self._http.put("/v1/agent/service/register", json=body)
        response.raise_for_status()

    async def report(self, instance_id: str, passing: bool, output: str = "") -> None:
        """A self-checked instance's answer (register's `self_checked`); raises httpx.HTTPError."""
        response = await self._http.put(
            f"/v1/agent/check/update/{check_id(instance_id)}",
            json={"Status": "passing" if passing else "critical", "Output": output[:500]},
        )
        response.raise_for_status()

    async def deregister(self, instance_id: str) -> None:
        response = await self._http.put(f"/v1/agent/service/deregister/{instance_id}")
        response.raise_for_status()

    async def healthy(self, service: str, index: int = 0) -> tuple[list[Instance], int]:
        """Passing instances and Consul's index; with `index`, blocks until it changes."""
        params = {"passing": "true"}
        if index:
            params |= {"index": str(index), "wait": BLOCKING_WAIT}
        response = await self._http.get(f"/v1/health/service/{service}", params=params)
        response.raise_for_status()
        new_index = int(response.headers.get("X-Consul-Index", "0"))
        instances = sorted(
            Instance(
                entry["Service"]["Address"] or entry["Node"]["Address"],
                entry["Service"]["Port"],
                entry["Service"]["ID"],
            )
            for entry in response.json()
        )
        return instances, new_index

    async def watch_healthy(self, service: str) -> AsyncIterator[list[Instance]]:
        """Yield the healthy instances now and after every change; retries while Consul is away."""
        index, last, backoff = 0, None, 0.5
        while True:
            try:
                instances, new_index = await self.healthy(service, index)
            except httpx.HTTPError as error:
                _log.warning("consul watch of %s failed: %s", service, error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                index = 0
                continue
            backoff = 0.5
            # Consul asks clients to reset when the index goes backwards.
            index = new_index if new_index >= index else 0
            if instances != last:
                last = instances
                yield instances

    async def aclose(self) -> None:
        await self._http.aclose()


class Balancer:
    """Round-robin gRPC channels over the healthy instances of one service.

    It follows Consul in the background from its first use (`start()`, `wait_ready()`
    or `pick()`), so an instance that never calls the service (a consumer) never
    watches it; `channel()` picks the next instance and raises NoHealthyInstance
    when none is healthy. With `tls` (the caller's ZENTRY_TLS_* files) every channel
    is mutual TLS and accepts only a server whose certificate names `service`
    (services.kit.tls); when the files are renewed, the channels are made again.
    """

    def __init__(
        self,
        consul: Consul,
        service: str,
        interceptors: list[grpc.aio.ClientInterceptor] | None = None,
        tls: TlsFiles | None = None,
    ):
        self._consul = consul
        self._service = service
        self._interceptors = interceptors or []
        self._tls = tls
        self._tls_version = kit_tls.version(tls)
        self._next_renewal_look = 0.0
        self._closing: set[asyncio.Task] = set()
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._cycle: Callable[[], str] | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name=f"balancer-{self._service}")

    async def wait_ready(self, timeout: float) -> None:
        self.start()
        if not self._ready.is_set():  # the usual case costs no task
            await asyncio.wait_for(self._ready.wait(), timeout)

    @property
    def targets(self) -> list[str]:
        return sorted(self._channels)

    def pick(self) -> tuple[str, grpc.aio.Channel]:
        """The next instance's target and channel; raises NoHealthyInstance if there is none."""
        self.start()
        if not self._cycle:
            raise NoHealthyInstance(f"no healthy instance of {self._service} in Consul")
        if self._tls is not None:
            self._renew_channels()
        target = self._cycle()
        return target, self._channels[target]

    def _renew_channels(self) -> None:
        """New channels (with the new files) once the TLS files have changed; looks at
        most every RENEWAL_LOOK seconds. The old channels finish their calls, then close."""
        now = time.monotonic()
        if now < self._next_renewal_look:
            return
        self._next_renewal_look = now + RENEWAL_LOOK
        version = kit_tls.version(self._tls)
        if not version or version == self._tls_version:
            return
        try:
            renewed = {target: self._open(target) for target in self._channels}
        except ConfigError as error:  # half-replaced files: look again later
            _log.warning("cannot use the renewed TLS files yet: %s", error)
            return
        old, self._channels, self._tls_version = self._channels, renewed, version
        for channel in old.values():
            task = asyncio.create_task(channel.close(grace=5))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        _log.info("channels to %s remade with the renewed TLS files", self._service)

    def _open(self, target: str) -> grpc.aio.Channel:
        return kit_tls.aio_channel(
            target, self._tls, self._service, interceptors=self._interceptors
        )

    def channel(self) -> grpc.aio.Channel:
        return self.pick()[1]

    async def _follow(self) -> None:
        async for instances in self._consul.watch_healthy(self._service):
            targets = [instance.target for instance in instances]
            for target in targets:
                if target not in self._channels:
                    self._channels[target] = self._open(target)
            for target in set(self._channels) - set(targets):
                await self._channels.pop(target).close(grace=5)
            self._cycle = itertools.cycle(targets).__next__ if targets else None
            self._ready.set()
            _log.info("instances of %s: %s", self._service, targets or "none")

    async def aclose(self) -> None:
        if self._task:
            self._task.cancel()
        for channel in self._channels.values():
            await channel.close()


class NoHealthyInstance(Exception):
    """No healthy instance of the service is known."""
