"""Reading from Redis while it answers, and from PostgreSQL for a moment after it failed.

Redis holds copies (timelines, boards) that PostgreSQL can always answer for,
more slowly. After a Redis failure a reader skips Redis for `retry` seconds,
so an outage costs one failed call a second instead of one per request, and
the reader comes back to Redis by itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

from services.kit.metrics import REDIS_FALLBACK

_log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds on the PostgreSQL path after a Redis failure.
RETRY = 1.0


class RedisFallback:
    def __init__(
        self, what: str, retry: float = RETRY, clock: Callable[[], float] = time.monotonic
    ):
        self._what = what  # for the log: what is read from PostgreSQL instead
        self._retry = retry
        self._clock = clock
        self._down_until = 0.0
        self._fallback = REDIS_FALLBACK.labels(what)
        self._fallback.set(0)

    async def attempt(self, read: Callable[[], Awaitable[T | None]]) -> T | None:
        """`read()`, unless Redis failed within the last `retry` seconds; None when it
        failed then or fails now (or `read` found nothing): read PostgreSQL instead."""
        if self._clock() < self._down_until:
            return None
        try:
            found = await read()
        except RedisError as error:
            _log.warning("redis unavailable, reading %s from PostgreSQL: %r", self._what, error)
            self._down_until = self._clock() + self._retry
            self._fallback.set(1)
            return None
        if self._down_until:
            self._down_until = 0.0
            self._fallback.set(0)
        return found
