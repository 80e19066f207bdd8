"""Wires the sleep service together: what `python -m services.sleep` serves."""

from __future__ import annotations

from pathlib import Path

from zentry.sleep.v1 import sleep_service_pb2, sleep_service_pb2_grpc

from services.kit import telemetry
from services.kit.boot import Assembly
from services.kit.consumer import ConsumerRunner
from services.kit.db import Database
from services.kit.discovery import Balancer, Consul
from services.kit.outbox import OutboxRelay
from services.kit.profiles import OwnProfiles
from services.kit.retention import Retention, RetentionSweeper, processed_events_sweeper
from services.sleep.abandoner import abandoner
from services.sleep.actions import SleepActions
from services.sleep.config import SleepSettings
from services.sleep.directory import UserDirectory
from services.sleep.projector import Projector
from services.sleep.server import SleepServicer

MIGRATIONS = Path(__file__).parent / "migrations"


def assemble(settings: SleepSettings) -> Assembly:
    """Build the clients and the servicer; must run inside the event loop."""
    service = settings.service
    db = Database(service.postgres_dsn, session_dsn=service.postgres_session_dsn)
    consul = Consul(service.consul_url, service.consul_token)
    users = Balancer(consul, "user", interceptors=[telemetry.ClientTracing()], tls=service.tls)
    profiles = OwnProfiles(users, settings.profiles)
    directory = UserDirectory(db, users, profiles, timeout=settings.user_lookup_timeout)
    actions = SleepActions(db, directory)
    servicer = SleepServicer(actions)
    return Assembly(
        services=[sleep_service_pb2.DESCRIPTOR.services_by_name["SleepService"]],
        add_servicers=lambda server: sleep_service_pb2_grpc.add_SleepServiceServicer_to_server(
            servicer, server
        ),
        workers=[
            OutboxRelay(
                db, service.kafka_bootstrap, client_id=service.instance_id, service=service.service
            ),
            abandoner(actions, settings.abandon_interval),
            # Where create_requests is written (the API); the consumers' ledger, where they run.
            RetentionSweeper(
                "create requests sweep",
                db,
                [Retention("create_requests", "created_at", settings.request_retention)],
                settings.sweeps,
            ),
        ],
        consumers=[
            ConsumerRunner(db, service.kafka_bootstrap, subscription)
            for subscription in Projector().subscriptions()
        ],
        timers=[processed_events_sweeper(db, settings.sweeps)],
        closers=[users.aclose, consul.aclose, db.dispose],
        migrations_dir=MIGRATIONS,
    )
