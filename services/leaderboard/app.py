"""Wires the leaderboard service together: what `python -m services.leaderboard` serves."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis
from zentry.leaderboard.v1 import leaderboard_service_pb2, leaderboard_service_pb2_grpc

from services.kit import redis_client as redis_client_
from services.kit import telemetry
from services.kit.addresses import RedisAddress
from services.kit.boot import Assembly
from services.kit.consumer import ConsumerRunner
from services.kit.db import Database
from services.kit.discovery import Balancer, Consul
from services.kit.profiles import OwnProfiles
from services.kit.retention import Retention, RetentionSweeper
from services.leaderboard.boards import Boards
from services.leaderboard.config import LeaderboardSettings
from services.leaderboard.projector import Projector
from services.leaderboard.reading import LeaderboardReader
from services.leaderboard.server import LeaderboardServicer
from services.leaderboard.user_cache import UserCache

MIGRATIONS = Path(__file__).parent / "migrations"


def redis_client(address: RedisAddress | str) -> Redis:
    """Short timeouts: a query ranks from PostgreSQL rather than wait on a sick Redis."""
    return redis_client_.connect(address, socket_timeout=1.0, socket_connect_timeout=0.5)


def parts(settings: LeaderboardSettings, db: Database, redis: Redis) -> tuple[Boards, Projector]:
    """The boards and the projector over the given clients (replay and tests use them too)."""
    boards = Boards(redis, settings.min_nights, settings.retention)
    return boards, Projector(boards)


def reader(
    settings: LeaderboardSettings, db: Database, boards: Boards, profiles: OwnProfiles
) -> LeaderboardReader:
    """What answers queries, over the boards `parts` made."""
    return LeaderboardReader(db, boards, UserCache(db, settings.directory_ttl), profiles)


def consumers(
    settings: LeaderboardSettings, db: Database, projector: Projector, bootstrap: str, **topics
):
    """The scores' and the directory's batch runners (replay and tests name the topics)."""
    return [
        ConsumerRunner(db, bootstrap, subscription, max_batch=settings.batch_size)
        for subscription in projector.subscriptions(**topics)
    ]


def assemble(settings: LeaderboardSettings) -> Assembly:
    """Build the clients and the servicer; must run inside the event loop."""
    service = settings.service
    db = Database(service.postgres_dsn, session_dsn=service.postgres_session_dsn)
    redis = redis_client(service.redis)
    consul = Consul(service.consul_url, service.consul_token)
    users = Balancer(consul, "user", interceptors=[telemetry.ClientTracing()], tls=service.tls)
    boards, projector = parts(settings, db, redis)
    servicer = LeaderboardServicer(
        reader(settings, db, boards, OwnProfiles(users, settings.profiles))
    )
    return Assembly(
        services=[leaderboard_service_pb2.DESCRIPTOR.services_by_name["LeaderboardService"]],
        add_servicers=lambda server: (
            leaderboard_service_pb2_grpc.add_LeaderboardServiceServicer_to_server(servicer, server)
        ),
        consumers=consumers(settings, db, projector, service.kafka_bootstrap),
        timers=[
            RetentionSweeper(
                "score ledger sweep",
                db,
                [Retention("score_changes", "recorded_at", settings.ledger_retention)],
                settings.sweeps,
            )
        ],
        closers=[users.aclose, consul.aclose, redis.aclose, db.dispose],
        migrations_dir=MIGRATIONS,
    )
