"""Discovery against a real Consul: registration, health checks, round robin, dead instances."""

from __future__ import annotations

import asyncio
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.kit.discovery import Balancer, Consul
from tests.support import unique


async def health_server(*names: str, port: int = 0) -> tuple[grpc.aio.Server, int]:
    """A process that answers health checks: SERVING overall and for each of `names` (an
    instance serves under its own instance id too, which its Consul check asks for)."""
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    for name in ("", *names):
        await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port


async def eventually(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout}s: {what}")
        await asyncio.sleep(0.1)


async def test_calls_are_spread_and_a_dead_instance_drops_out(settings):
    consul = Consul(settings.consul.http_url, settings.consul.token)
    service = unique("itest-svc")
    ids = [f"{service}-{n}" for n in range(2)]
    servers = [await health_server(instance_id) for instance_id in ids]
    for (_, port), instance_id in zip(servers, ids, strict=True):
        await consul.register(service, instance_id, "127.0.0.1", port)
    balancer = Balancer(consul, service)
    try:
        balancer.start()
        targets = {f"127.0.0.1:{port}" for _, port in servers}
        await eventually(
            lambda: set(balancer.targets) == targets,
            15,
            "both instances pass their gRPC health check",
        )

        used = []
        for _ in range(6):
            target, channel = balancer.pick()
            used.append(target)
            stub = health_pb2_grpc.HealthStub(channel)
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert used.count(used[0]) == 3 and len(set(used)) == 2, f"not round robin: {used}"

        dead_server = servers[0][0]
        await dead_server.stop(0)  # as good as killed: nothing answers on its port
        started = time.monotonic()
        await eventually(
            lambda: balancer.targets == [f"127.0.0.1:{servers[1][1]}"],
            15,
            "the dead instance leaves the balancer",
        )
        assert time.monotonic() - started < 10
        for _ in range(3):
            reply = await health_pb2_grpc.HealthStub(balancer.channel()).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await balancer.aclose()
        for instance_id in ids:
            await consul.deregister(instance_id)
        for server, _ in servers:
            await server.stop(0)
        await consul.aclose()


async def test_deregistering_removes_the_instance_at_once(settings):
    consul = Consul(settings.consul.http_url, settings.consul.token)
    service = unique("itest-svc")
    server, port = await health_server(f"{service}-1")
    try:
        await consul.register(service, f"{service}-1", "127.0.0.1", port)
        watch = consul.watch_healthy(service)
        instances = await asyncio.wait_for(anext(watch), 10)
        while not instances:
            instances = await asyncio.wait_for(anext(watch), 10)
        assert [(i.port, i.instance_id) for i in instances] == [(port, f"{service}-1")]
        await consul.deregister(f"{service}-1")
        assert await asyncio.wait_for(anext(watch), 10) == []
        await watch.aclose()
    finally:
        await server.stop(0)
        await consul.aclose()


async def test_a_process_that_took_a_dead_instances_port_is_not_taken_for_it(settings):
    """Ports are reused: after an instance dies without deregistering (SIGKILL), another
    process, of any service, may listen on its port. Consul's check asks for the health of
    the registered instance by its id, so the stranger never passes for it."""
    consul = Consul(settings.consul.http_url, settings.consul.token)
    service = unique("itest-svc")
    instance_id = f"{service}-1"
    server, port = await health_server(instance_id)
    stranger = None
    balancer = Balancer(consul, service)
    try:
        await consul.register(service, instance_id, "127.0.0.1", port)
        balancer.start()
        await eventually(
            lambda: balancer.targets == [f"127.0.0.1:{port}"], 15, "the instance passes"
        )
        await server.stop(0)  # killed: it never deregisters
        stranger, _ = await health_server("another-service-9", port=port)  # same port
        await eventually(lambda: balancer.targets == [], 15, "the dead instance drops out")
        await asyncio.sleep(3)  # three more checks, each answered by the stranger
        assert balancer.targets == [], "a stranger on the port passed for the dead instance"
    finally:
        await balancer.aclose()
        await consul.deregister(instance_id)
        if stranger is not None:
            await stranger.stop(0)
        await server.stop(0)
        await consul.aclose()
