"""Booting a service: build the gRPC server, serve, and stop gracefully.

`create_server` builds a grpc.aio server with the kit's interceptors (tracing,
error mapping, auth), the standard health service and reflection, bound to the
configured port (0 picks a free one) and returns it with the port: tests use
it directly. `run` is what `python -m services.<name>` calls: logs, tracing,
migrations, serve, register in Consul, run the background workers, and on
SIGTERM/SIGINT shut down in the order that drops no call:

1. mark every service NOT_SERVING and deregister from Consul, so the gateway
   and other callers stop choosing this instance;
2. wait `drain_delay` for them to notice;
3. stop taking new calls and give in-flight calls `shutdown_grace` to finish;
4. stop the background workers (outbox relay, consumers, timers) after their current item.

A background worker that fails takes the process down (exit 1) rather than
leaving an instance that serves but no longer relays or consumes.

`ZENTRY_ROLE` splits a service that both serves RPCs and consumes events, so
each half scales on its own (Kubernetes runs them as two Deployments):
`api` serves, registers in Consul and relays its outbox; `consumer` runs the
Kafka consumers behind a health-only server that Consul never hears of;
`all` (the default, and what `make dev` runs) does both.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.kit import logs, metrics, reflection, telemetry, tls
from services.kit.auth import AuthInterceptor, TokenVerifier, public_methods, required_roles
from services.kit.clients import GatewayTrust
from services.kit.db import migrate
from services.kit.discovery import Consul
from services.kit.errors import ErrorInterceptor
from services.kit.heartbeat import Heartbeat
from services.kit.settings import ConfigError, ServiceSettings
from services.kit.text import ControlCharacterGuard

_log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class Worker(Protocol):
    """A background loop: `run()` until `stop()` is called (outbox relay, consumers, timers)."""

    async def run(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Assembly:
    """What a service hands to the kit: its gRPC services and background loops.

    `workers` run beside the API (the outbox relay); `consumers` are the Kafka
    consumer runners, which ZENTRY_ROLE=consumer runs apart from the API;
    `timers` are periodic jobs on the consumers' data (a retention sweep), run
    where the consumers run. Clients that only one role uses open at their first
    use (discovery.Balancer, outbox.OutboxRelay), so the other role opens none.
    """

    services: Sequence[ServiceDescriptor]
    add_servicers: Callable[[grpc.aio.Server], None]
    workers: list[Worker] = field(default_factory=list)
    consumers: list[Worker] = field(default_factory=list)
    timers: list[Worker] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    migrations_dir: Path | None = None

    def for_role(self, role: str) -> Assembly:
        """What an instance of `role` (see ServiceSettings.role) runs of this service."""
        if role == "api":
            return replace(self, consumers=[], timers=[])
        if role == "consumer":
            if not self.consumers:
                raise ConfigError("ZENTRY_ROLE=consumer, but this service consumes no topic")
            return replace(self, services=[], add_servicers=lambda _server: None, workers=[])
        return self


def create_server(
    settings: ServiceSettings,
    assembly: Assembly,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Build (not start) the server; returns it, the bound port and its health servicer."""
    verifier = TokenVerifier.from_file(
        settings.jwt_public_key_file, settings.jwt_issuer, settings.jwt_audience
    )
    server = grpc.aio.server(
        interceptors=[
            telemetry.ServerTracing(),
            metrics.ServerMetrics(),
            ErrorInterceptor(),
            AuthInterceptor(
                verifier,
                public_methods(*assembly.services),
                required_roles(*assembly.services),
            ),
            ControlCharacterGuard(),
            GatewayTrust.from_file(settings.gateway_secret_file),
        ],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    assembly.add_servicers(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [service.full_name for service in assembly.services]
    reflection.enable([*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name], server)
    address = f"{settings.host}:{settings.port}"
    try:
        if settings.tls:  # mutual TLS only: no plaintext port beside it
            port = server.add_secure_port(address, tls.server_credentials(settings.tls))
        else:
            port = server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if port == 0:
        raise ConfigError(f"cannot listen on {address}: in use, or not an address of this host")
    return server, port, health_servicer


async def serve(settings: ServiceSettings, assembly: Assembly) -> int:
    """Serve until a signal or a failed worker; returns the process exit code."""
    assembly = assembly.for_role(settings.role)
    if assembly.migrations_dir:
        await asyncio.to_thread(migrate, settings.postgres_session_dsn, assembly.migrations_dir)
    server, port, health_servicer = create_server(settings, assembly)
    metrics_server = metrics.serve(settings.host, settings.metrics_port)
    await server.start()
    # The instance's own id too: its Consul check asks for it (services.kit.discovery).
    names = ["", settings.instance_id, *(service.full_name for service in assembly.services)]
    for name in names:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    consul = Consul(settings.consul_url, settings.consul_token)
    registered = bool(assembly.services)  # a consumer serves no API: callers must not find it
    if registered:
        await consul.register(
            settings.service,
            settings.instance_id,
            settings.advertise_host,
            port,
            metrics_port=metrics_server.server_port,
            self_checked=settings.tls is not None,
        )
    heartbeat = None  # under mutual TLS, the instance reports its own check (see the module)
    if registered and settings.tls is not None:
        heartbeat = Heartbeat(
            consul,
            settings.service,
            settings.instance_id,
            f"{settings.advertise_host}:{port}",
            settings.tls,
        )
    _log.info(
        "serving",
        extra={
            "address": f"{settings.advertise_host}:{port}",
            "role": settings.role,
            "metrics": f"http://{settings.advertise_host}:{metrics_server.server_port}/metrics",
        },
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    background = [*assembly.workers, *assembly.consumers, *assembly.timers]
    tasks = [asyncio.create_task(w.run(), name=type(w).__name__) for w in background]
    if heartbeat is not None:  # supervised like the workers: without it Consul drops us
        heartbeat_task = asyncio.create_task(heartbeat.run(), name="Heartbeat")
        tasks.append(heartbeat_task)
    exit_code = 0
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        exit_code = 1
        for task in done:
            _log.error("worker %s stopped: %r", task.get_name(), task.exception())

    _log.info("shutting down", extra={"grace_s": settings.shutdown_grace})
    await health_servicer.enter_graceful_shutdown()
    if heartbeat is not None:  # stopped first: a check deregistered cannot be reported
        heartbeat.stop()
        await asyncio.wait([heartbeat_task], timeout=settings.shutdown_grace)
    try:
        if registered:
            await consul.deregister(settings.instance_id)
    except Exception as error:  # Consul will reap us after the check fails
        _log.warning("could not deregister from consul: %r", error)
    await asyncio.sleep(settings.drain_delay)
    await server.stop(settings.shutdown_grace)
    for worker in background:
        worker.stop()
    if tasks:
        await asyncio.wait(tasks, timeout=settings.shutdown_grace)
    for close in assembly.closers:
        await close()
    await consul.aclose()
    metrics_server.shutdown()
    metrics_server.server_close()
    waiter.cancel()
    _log.info("stopped")
    return exit_code


class HasServiceSettings(Protocol):
    """A service's own settings object; the kit reads its `service` part."""

    @property
    def service(self) -> ServiceSettings: ...


S = TypeVar("S", bound=HasServiceSettings)


def run(load_settings: Callable[[], S], assemble: Callable[[S], Assembly]) -> None:
    """The whole life of a service process; what `python -m services.<name>` calls."""
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        sys.exit(2)
    common = settings.service
    logs.configure(common.service, common.instance_id, common.log_level)
    provider = telemetry.configure(
        common.service, common.instance_id, common.otlp_endpoint, common.zipkin_endpoint
    )

    async def main() -> int:
        return await serve(common, assemble(settings))

    try:
        code = asyncio.run(main())
    except ConfigError as error:
        _log.error("cannot start: %s", error)
        code = 2
    finally:
        provider.shutdown()
    sys.exit(code)
