"""Refuses log-ins for an account after repeated failures, for a while (shared in Redis).

Counted per account name as typed (casefolded), whether or not it exists, so
the answer never tells an attacker which accounts are real. If Redis is down
the guard lets log-ins through (and logs it): the gateway's rate limit still
bounds a flood, and an outage of Redis must not lock everyone out.
"""

from __future__ import annotations

import hashlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

_log = logging.getLogger(__name__)


class LoginGuard:
    def __init__(self, redis: Redis, max_failures: int, lockout_seconds: int):
        self._redis = redis
        self._max = max_failures
        self._lockout = lockout_seconds

    @staticmethod
    def _key(account: str) -> str:
        digest = hashlib.sha256(account.casefold().encode()).hexdigest()[:32]
        return f"user:login-failures:{digest}"

    async def retry_after(self, account: str) -> int:
        """Seconds until `account` may try again; 0 when it may try now."""
        try:
            key = self._key(account)
            failures = await self._redis.get(key)
            if failures is None or int(failures) < self._max:
                return 0
            return max(1, await self._redis.ttl(key))
        except RedisError as error:
            _log.warning("login guard unavailable, allowing the attempt: %r", error)
            return 0

    async def failed(self, account: str) -> None:
        """Count a failure; the count lives `lockout_seconds` after the latest one."""
        try:
            key = self._key(account)
            async with self._redis.pipeline(transaction=True) as pipe:
                await pipe.incr(key).expire(key, self._lockout).execute()
        except RedisError as error:
            _log.warning("login guard could not count a failure: %r", error)

    async def succeeded(self, account: str) -> None:
        try:
            await self._redis.delete(self._key(account))
        except RedisError as error:
            _log.warning("login guard could not reset: %r", error)
