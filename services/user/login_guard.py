"""Bounds password guessing: attempts are counted before the password is checked.

Two counts, each living `lockout` seconds after its latest attempt:

- per account *and client address*: `max_failures` attempts, then that
  address is refused for the account. A guesser locks out only their own
  address, never the account's owner elsewhere;
- per account over all addresses: `account_ceiling` attempts (many more),
  then every address is refused: guessing spread over many addresses is
  bounded too, at the price that such an attack can keep the account's
  owner out while it lasts.

An account is counted by its id whichever name was typed (username or email),
and a name no account has by the name, so the answer never tells which
accounts exist. The count is taken atomically before argon2 runs, so fifty
concurrent guesses get `max_failures` checks, not fifty. A successful log-in
takes its attempt back. With Redis unreachable, each process counts in its
own memory (and says so in the logs) rather than let every attempt through.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.kit.errors import ResourceExhausted

_log = logging.getLogger(__name__)

#: KEYS: the pair's count, the account's count. ARGV: lockout seconds. Returns both counts.
_ATTEMPT = """
local pair = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
local account = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return {pair, account}
"""
#: Takes a successful attempt back: the pair starts again, the account counts one less.
_SUCCEEDED = """
redis.call('DEL', KEYS[1])
if redis.call('DECR', KEYS[2]) <= 0 then redis.call('DEL', KEYS[2]) end
return 1
"""
#: Counts a process keeps while Redis is down, at most (the oldest go first).
LOCAL_KEYS = 100_000


class LoginGuard:
    def __init__(
        self,
        redis: Redis,
        max_failures: int,
        lockout_seconds: int,
        account_ceiling: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._redis = redis
        self._max = max_failures
        self._ceiling = account_ceiling
        self._lockout = lockout_seconds
        self._attempt = redis.register_script(_ATTEMPT)
        self._succeeded = redis.register_script(_SUCCEEDED)
        self._local = _LocalCounts(clock)

    async def attempt(self, account: str, address: str) -> None:
        """Count an attempt on `account` (its id, or the name typed) from `address`;
        ResourceExhausted if it is one too many."""
        keys = _keys(account, address)
        try:
            pair, total = await self._attempt(keys=keys, args=[self._lockout])
        except RedisError as error:
            _log.warning("login guard: Redis unreachable, counting in this process: %r", error)
            pair, total = (self._local.incr(key, self._lockout) for key in keys)
        if pair > self._max:
            raise ResourceExhausted(
                "Too many log-ins for this account from your address; "
                f"try again in {_minutes(self._lockout)}."
            )
        if total > self._ceiling:
            raise ResourceExhausted(
                "Too many log-ins for this account; try again in "
                f"{_minutes(self._lockout)}, or reset your password."
            )

    async def succeeded(self, account: str, address: str) -> None:
        keys = _keys(account, address)
        try:
            await self._succeeded(keys=keys)
        except RedisError as error:
            _log.warning("login guard: Redis unreachable, resetting in this process: %r", error)
            self._local.succeeded(*keys)


def _keys(account: str, address: str) -> list[str]:
    """Hashed, so keys hold no names or addresses; the braces keep both on one Redis slot."""
    digest = hashlib.sha256(account.casefold().encode()).hexdigest()[:32]
    where = hashlib.sha256(address.encode()).hexdigest()[:16]
    return [f"user:login:{{{digest}}}:{where}", f"user:login:{{{digest}}}"]


def _minutes(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class _LocalCounts:
    """Counts with an expiry in this process's memory, for while Redis is down."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self._counts: dict[str, tuple[int, float]] = {}

    def incr(self, key: str, ttl: float) -> int:
        now = self._clock()
        count, expires = self._counts.pop(key, (0, now))
        count = count + 1 if expires > now else 1
        self._counts[key] = (count, now + ttl)  # re-inserted: dict order is age order
        while len(self._counts) > LOCAL_KEYS:
            del self._counts[next(iter(self._counts))]
        return count

    def succeeded(self, pair: str, account: str) -> None:
        self._counts.pop(pair, None)
        count, expires = self._counts.pop(account, (0, 0.0))
        if count > 1:
            self._counts[account] = (count - 1, expires)
