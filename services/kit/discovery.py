"""Consul: registering an instance, and following the healthy instances of a service.

Registration uses Consul's native gRPC health check against the standard
health service, so an instance that dies or reports NOT_SERVING turns critical
within `CHECK_INTERVAL` and drops out of `watch_healthy` answers. The check asks
for the health of the instance itself, by its id (which the instance serves as
a health "service" name, services.kit.boot): ports are reused, and a process
that later listens on a killed instance's port, of whatever service, must not
pass for it and be sent that service's calls. Watching uses
Consul blocking queries: an answer comes back as soon as the set changes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import httpx

_log = logging.getLogger(__name__)

CHECK_INTERVAL = "1s"
CHECK_TIMEOUT = "1s"
# A SIGKILLed instance never deregisters itself; Consul reaps it after this.
DEREGISTER_CRITICAL_AFTER = "1m"
BLOCKING_WAIT = "30s"


@dataclass(frozen=True, order=True)
class Instance:
    """One healthy instance of a service, as Consul's catalog knows it."""

    address: str
    port: int
    instance_id: str = ""

    @property
    def target(self) -> str:
        return f"{self.address}:{self.port}"


class Consul:
    """The few Consul agent HTTP calls Zentry makes."""

    def __init__(self, url: str):
        self._http = httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(5.0, read=40.0))

    async def register(
        self,
        service: str,
        instance_id: str,
        address: str,
        port: int,
        tags: tuple[str, ...] = (),
        metrics_port: int = 0,
    ) -> None:
        """Register (or re-register) an instance with a gRPC health check of `instance_id`
        (the instance must report it SERVING, as boot does); idempotent. `metrics_port`,
        if any, goes into its metadata, where Prometheus' Consul discovery finds it."""
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
                "CheckID": f"{instance_id}:grpc-health",
                "Name": "gRPC health",
                "GRPC": f"{address}:{port}/{instance_id}",
                "GRPCUseTLS": False,
                "Interval": CHECK_INTERVAL,
                "Timeout": CHECK_TIMEOUT,
                "DeregisterCriticalServiceAfter": DEREGISTER_CRITICAL_AFTER,
            },
        }
        response = await self._http.put("/v1/agent/service/register", json=body)
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
    when none is healthy.
    """

    def __init__(
        self,
        consul: Consul,
        service: str,
        interceptors: list[grpc.aio.ClientInterceptor] | None = None,
    ):
        self._consul = consul
        self._service = service
        self._interceptors = interceptors or []
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
        target = self._cycle()
        return target, self._channels[target]

    def channel(self) -> grpc.aio.Channel:
        return self.pick()[1]

    async def _follow(self) -> None:
        async for instances in self._consul.watch_healthy(self._service):
            targets = [instance.target for instance in instances]
            for target in targets:
                if target not in self._channels:
                    self._channels[target] = grpc.aio.insecure_channel(
                        target, interceptors=self._interceptors
                    )
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
