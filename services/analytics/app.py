"""Wires the analytics service together: what `python -m services.analytics` serves.

Both parts, sleep statistics (`stats`) and product analytics (`product`), run
in one process on one database.
"""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis
from zentry.analytics.v1 import (
    product_analytics_service_pb2,
    product_analytics_service_pb2_grpc,
    sleep_stats_service_pb2,
    sleep_stats_service_pb2_grpc,
)

from services.analytics.config import AnalyticsSettings
from services.analytics.product import rollups
from services.analytics.product.intake import AsyncProducer, Intake, Salts
from services.analytics.product.reports import Reports
from services.analytics.product.retention import Sweeper
from services.analytics.product.rollups import Rollups
from services.analytics.product.server import ProductAnalyticsServicer
from services.analytics.product.uniques import Uniques
from services.analytics.stats import projector
from services.analytics.stats.projector import Projector
from services.analytics.stats.reading import SleepStatsReader
from services.analytics.stats.server import SleepStatsServicer
from services.kit import redis_client, telemetry
from services.kit.boot import Assembly
from services.kit.consumer import ConsumerRunner
from services.kit.db import Database
from services.kit.discovery import Balancer, Consul
from services.kit.events import CLIENT_EVENTS, SLEEP_EVENTS, USER_EVENTS
from services.kit.profiles import OwnProfiles

MIGRATIONS = Path(__file__).parent / "migrations"


def consumers(
    settings: AnalyticsSettings,
    db: Database,
    redis: Redis,
    bootstrap: str,
    *,
    sleep_topic: str = SLEEP_EVENTS,
    user_topic: str = USER_EVENTS,
    client_topic: str = CLIENT_EVENTS,
    group_suffix: str = "",
    **options,
) -> list[ConsumerRunner]:
    """The nights', the sleepers' and the rollups' batch runners (tests name their own)."""
    rollups_group = rollups.GROUP + group_suffix
    return [
        *stats_consumers(
            settings,
            db,
            bootstrap,
            sleep_topic=sleep_topic,
            user_topic=user_topic,
            group_suffix=group_suffix,
            **options,
        ),
        ConsumerRunner(
            db,
            bootstrap,
            *Rollups(Uniques(redis), settings.caps).subscriptions(client_topic, rollups_group),
            max_batch=settings.batch_size,
            **options,
        ),
    ]


def stats_consumers(
    settings: AnalyticsSettings,
    db: Database,
    bootstrap: str,
    *,
    sleep_topic: str = SLEEP_EVENTS,
    user_topic: str = USER_EVENTS,
    group_suffix: str = "",
    **options,
) -> list[ConsumerRunner]:
    """The sleep statistics' runners (the nights' and the sleepers'): what a replay runs."""
    groups = (projector.NIGHTS_GROUP + group_suffix, projector.SLEEPERS_GROUP + group_suffix)
    return [
        ConsumerRunner(db, bootstrap, subscription, max_batch=settings.batch_size, **options)
        for subscription in Projector().subscriptions(sleep_topic, user_topic, groups)
    ]


def assemble(settings: AnalyticsSettings) -> Assembly:
    """Build the clients and the servicers; must run inside the event loop."""
    service = settings.service
    db = Database(service.postgres_dsn, session_dsn=service.postgres_session_dsn)
    redis = redis_client.connect(service.redis, socket_timeout=2.0, socket_connect_timeout=0.5)
    producer = AsyncProducer(service.kafka_bootstrap, service.instance_id)
    consul = Consul(service.consul_url, service.consul_token)
    users = Balancer(consul, "user", interceptors=[telemetry.ClientTracing()], tls=service.tls)
    stats = SleepStatsServicer(SleepStatsReader(db, OwnProfiles(users, settings.profiles)))
    product = ProductAnalyticsServicer(
        Intake(Salts(db), producer, settings.limits),
        Reports(db, Uniques(redis), settings.raw_retention, settings.rollup_retention),
    )

    def add_servicers(server) -> None:
        sleep_stats_service_pb2_grpc.add_SleepStatsServiceServicer_to_server(stats, server)
        product_analytics_service_pb2_grpc.add_ProductAnalyticsServiceServicer_to_server(
            product, server
        )

    return Assembly(
        services=[
            sleep_stats_service_pb2.DESCRIPTOR.services_by_name["SleepStatsService"],
            product_analytics_service_pb2.DESCRIPTOR.services_by_name["ProductAnalyticsService"],
        ],
        add_servicers=add_servicers,
        consumers=consumers(settings, db, redis, service.kafka_bootstrap),
        timers=[
            Sweeper(db, settings.raw_retention, settings.rollup_retention, settings.sweep_interval)
        ],
        closers=[producer.close, users.aclose, consul.aclose, redis.aclose, db.dispose],
        migrations_dir=MIGRATIONS,
    )
