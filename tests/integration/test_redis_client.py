"""services.kit.redis_client against the local Redis: `durable` asks the replicas, and says so
when they are not there (the failover itself: `CHAOS_PROFILE=redis-failover`, tests/chaos)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.kit import redis_client
from services.kit.errors import OUTAGES
from tests.support import unique


@pytest.fixture
async def lone(settings):
    """A client of the local Redis, which has no replica, asked for one."""
    client = redis_client.connect(replace(settings.redis, min_replicas=1), socket_timeout=5)
    yield client
    await client.aclose()


async def test_a_write_no_replica_holds_is_not_durable_and_is_an_outage(lone):
    key = unique("itest:durable")
    try:
        with pytest.raises(redis_client.NotReplicated, match="0 of the 1 replicas") as raised:
            await redis_client.durable(lone, key, redis_client.primary(lone))
        assert isinstance(raised.value, OUTAGES), "a consumer retries it, never parks the batch"
    finally:
        await lone.delete(key)


async def test_a_client_moved_to_another_primary_is_not_durable(lone):
    key = unique("itest:durable")
    try:
        with pytest.raises(redis_client.NotReplicated, match="primary changed"):
            await redis_client.durable(lone, key, ("127.0.0.1", 1))  # it wrote elsewhere
    finally:
        await lone.delete(key)


async def test_without_replicas_asked_for_nothing_is_written_or_awaited(settings):
    client = redis_client.connect(settings.redis)
    key = unique("itest:durable")
    try:
        await redis_client.durable(client, key, redis_client.primary(client))
        assert await client.exists(key) == 0
    finally:
        await client.aclose()
