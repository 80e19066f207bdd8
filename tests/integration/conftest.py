"""Integration tests run against the real servers; this makes sure they are up."""

from __future__ import annotations

import pytest

from infra import config, lifecycle
from infra.config import Settings


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

    return AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})


@pytest.fixture
def new_topic(kafka_admin):
    """Create a single-partition topic of the test's own (auto-creation is off); deleted after."""
    from confluent_kafka.admin import NewTopic

    from tests.support import unique

    created: list[str] = []

    def create(prefix: str = "itest") -> str:
        name = unique(prefix)
        kafka_admin.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=30)
        created.append(name)
        return name

    yield create
    if created:
        for future in kafka_admin.delete_topics(created).values():
            future.result(timeout=30)
