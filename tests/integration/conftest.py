"""Integration tests run against the real servers; this makes sure they are up."""

from __future__ import annotations

import pytest

from infra import config, lifecycle
from infra.config import Settings
from services.kit.addresses import kafka_security


@pytest.fixture(scope="session")
def settings() -> Settings:
    return config.load()


@pytest.fixture(scope="session", autouse=True)
def infrastructure(settings: Settings) -> None:
    """Start whatever is not running yet and wait until all is ready, as `make infra-up` does."""
    lifecycle.up(settings, lifecycle.servers(settings))


@pytest.fixture
def kafka_admin(settings: Settings):
    from confluent_kafka.admin import AdminClient

    return AdminClient({**kafka_security(), "bootstrap.servers": settings.kafka.bootstrap_servers})


@pytest.fixture
def new_topic(kafka_admin):
    """Create a single-partition topic of the test's own (auto-creation is off); deleted after."""
    from confluent_kafka.admin import NewTopic

    from tests.support import unique

    created: list[str] = []

    def create(prefix: str = "itest", *, dead_letters: bool = False) -> str:
        name = unique(prefix)
        names = [name, f"{name}.dlt"] if dead_letters else [name]
        for future in kafka_admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
            future.result(timeout=30)
        created.extend(names)
        return name

    yield create
    if created:
        for future in kafka_admin.delete_topics(created).values():
            future.result(timeout=30)


@pytest.fixture
def blank_database(settings: Settings):
    """An empty database of the test's own; dropped after. Yields its SQLAlchemy URL."""
    from infra.servers.postgres import scratch_database
    from tests.support import unique

    with scratch_database(settings.postgres, unique("ztest").replace("-", "_")) as url:
        yield url


@pytest.fixture
def scratch_database(blank_database: str) -> str:
    """A database of the test's own with the kit's tables (outbox, processed events)."""
    from sqlalchemy import create_engine

    from services.kit.tables import metadata

    engine = create_engine(blank_database)
    metadata.create_all(engine)
    engine.dispose()
    return blank_database


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of the test's own on a free port, to stop and start (tests/own_redis.py)."""
    from tests.own_redis import OwnRedis

    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()
