"""The Redis fallback switch: Redis while it answers, PostgreSQL for a moment after a failure."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError

from services.kit.fallback import RedisFallback
from services.kit.metrics import REDIS_FALLBACK


def falling_back(what: str) -> float:
    return REDIS_FALLBACK.labels(what)._value.get()


async def test_after_a_failure_redis_is_skipped_for_a_while_then_tried_again():
    now = [100.0]
    fallback = RedisFallback("feeds", retry=1.0, clock=lambda: now[0])
    calls = []

    async def read():
        calls.append(now[0])
        if len(calls) == 1:
            raise RedisConnectionError("down")
        return "from redis"

    assert falling_back("feeds") == 0
    assert await fallback.attempt(read) is None, "failed now: read PostgreSQL"
    assert falling_back("feeds") == 1, "the gauge an alert watches"
    now[0] = 100.9
    assert await fallback.attempt(read) is None and calls == [100.0], "not asked again yet"
    now[0] = 101.0
    assert await fallback.attempt(read) == "from redis"
    assert calls == [100.0, 101.0]
    assert falling_back("feeds") == 0
