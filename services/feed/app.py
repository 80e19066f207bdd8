"""Wires the feed service together: what `python -m services.feed` serves."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis
from zentry.feed.v1 import feed_service_pb2, feed_service_pb2_grpc

from services.feed.activity import Activity
from services.feed.config import FeedSettings
from services.feed.projector import Projector
from services.feed.reading import FeedReader
from services.feed.server import FeedServicer
from services.feed.timelines import Timelines
from services.feed.watching import EntryChanges
from services.kit import redis_client as redis_client_
from services.kit.addresses import RedisAddress
from services.kit.boot import Assembly
from services.kit.consumer import ConsumerRunner
from services.kit.db import Database
from services.kit.retention import processed_events_sweeper

MIGRATIONS = Path(__file__).parent / "migrations"


def redis_client(address: RedisAddress | str) -> Redis:
    """Short timeouts: a read falls back to PostgreSQL rather than wait on a sick Redis."""
    return redis_client_.connect(
        address, socket_timeout=1.0, socket_connect_timeout=0.5, health_check_interval=30
    )


def parts(settings: FeedSettings, db: Database, redis: Redis):
    """The timelines, the projector and the reader over the given clients (tests use it too)."""
    timelines = Timelines(
        redis,
        length=settings.timeline_length,
        reader_ttl=int(settings.inactive_after.total_seconds()),
        batch=settings.fanout_batch,
    )
    activity = Activity(settings.inactive_after)
    projector = Projector(db, timelines, activity)
    reader = FeedReader(db, timelines, activity, settings.rebuild_wait)
    return timelines, projector, reader


def consumers(db: Database, projector: Projector, bootstrap: str, **names) -> list[ConsumerRunner]:
    """The graph's and the entries' runners (replay and tests name the topics and groups)."""
    return [
        ConsumerRunner(db, bootstrap, subscription)
        for subscription in projector.subscriptions(**names)
    ]


def assemble(settings: FeedSettings) -> Assembly:
    """Build the clients and the servicer; must run inside the event loop."""
    service = settings.service
    db = Database(service.postgres_dsn, session_dsn=service.postgres_session_dsn)
    redis = redis_client(service.redis)
    _timelines, projector, reader = parts(settings, db, redis)
    changes = EntryChanges(
        db, max_watchers=settings.max_watchers, per_reader=settings.watchers_per_reader
    )
    servicer = FeedServicer(reader, changes, settings)
    return Assembly(
        services=[feed_service_pb2.DESCRIPTOR.services_by_name["FeedService"]],
        add_servicers=lambda server: feed_service_pb2_grpc.add_FeedServiceServicer_to_server(
            servicer, server
        ),
        workers=[changes],
        consumers=consumers(db, projector, service.kafka_bootstrap),
        timers=[processed_events_sweeper(db, settings.sweeps)],
        closers=[redis.aclose, db.dispose],
        migrations_dir=MIGRATIONS,
    )
