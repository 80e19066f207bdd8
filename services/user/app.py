"""Wires the user service together: what `python -m services.user` serves."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from zentry.user.v1 import user_service_pb2, user_service_pb2_grpc

from services.kit import redis_client, telemetry
from services.kit.boot import Assembly
from services.kit.db import Database
from services.kit.discovery import Balancer, Consul
from services.kit.outbox import OutboxRelay
from services.user.actions import UserActions
from services.user.config import UserSettings
from services.user.login_guard import LoginGuard
from services.user.nights import SleepNights
from services.user.passwords import Passwords
from services.user.server import UserServicer
from services.user.tokens import TokenIssuer

MIGRATIONS = Path(__file__).parent / "migrations"


def assemble(settings: UserSettings) -> Assembly:
    """Build the clients and the servicer; must run inside the event loop."""
    service = settings.service
    db = Database(service.postgres_dsn, session_dsn=service.postgres_session_dsn)
    redis = redis_client.connect(service.redis, socket_timeout=1.0, socket_connect_timeout=1.0)
    issuer = TokenIssuer(
        settings.jwt_private_key_file.read_bytes(),
        issuer=service.jwt_issuer,
        audience=service.jwt_audience,
        ttl=timedelta(seconds=settings.token_ttl_seconds),
        verifying=service.jwt_public_key_file.read_bytes(),
    )
    guard = LoginGuard(
        redis,
        settings.login_max_failures,
        settings.login_lockout_seconds,
        settings.login_account_ceiling,
    )
    passwords = Passwords(settings.password_memory_mib, settings.password_wait)
    consul = Consul(service.consul_url, service.consul_token)
    sleep = Balancer(consul, "sleep", interceptors=[telemetry.ClientTracing()], tls=service.tls)
    actions = UserActions(
        db,
        issuer,
        guard,
        settings.celebrity,
        settings.max_following,
        passwords,
        SleepNights(sleep),
        refresh_ttl=timedelta(seconds=settings.refresh_ttl_seconds),
    )
    servicer = UserServicer(actions)
    return Assembly(
        services=[user_service_pb2.DESCRIPTOR.services_by_name["UserService"]],
        add_servicers=lambda server: user_service_pb2_grpc.add_UserServiceServicer_to_server(
            servicer, server
        ),
        workers=[
            OutboxRelay(
                db, service.kafka_bootstrap, client_id=service.instance_id, service=service.service
            )
        ],
        closers=[sleep.aclose, consul.aclose, db.dispose, redis.aclose, _closer(passwords.close)],
        migrations_dir=MIGRATIONS,
    )


def _closer(close):
    async def closing() -> None:
        close()

    return closing
