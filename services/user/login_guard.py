"""Bounds password guessing: attempts are counted before the password is checked.

Two limits, each on attempts within `lockout` seconds:

- per account *and client address*: `max_failures` attempts, then that
  address is refused for the account until `lockout` after its latest try.
  A guesser locks out only their own address, never the account's owner
  elsewhere;
- per account over all addresses: a bucket of `account_burst` attempts (twice
  `max_failures` unless given, so that one address cannot empty it) that
  refills by `account_ceiling` a lockout. Guessing spread over many addresses
  is bounded too (and a flood of them checks a few passwords at once, not a
  hundred), at the price that such an attack can keep the account's owner out
  while it lasts.

An account is counted by its id whichever name was typed (username or email),
and a name no account has by the name, so a refusal does not tell whether a
name is an account (though it can tell, to one who spends the attempts, that
a username and an email are the same one). The count is taken atomically
before argon2 runs, so fifty
concurrent guesses get `max_failures` checks, not fifty. A successful log-in
takes its attempt back, and so does one no password was checked for (every
hashing slot busy), so an owner retrying during a flood is not locked out of
their own address by it. With Redis unreachable, each process counts in its
own memory (and says so in the logs) rather than let every attempt through.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.kit.errors import ResourceExhausted

_log = logging.getLogger(__name__)

#: KEYS: the pair's count, the account's bucket. ARGV: lockout seconds, max attempts a pair,
#: the bucket's refill a lockout and its size. Returns the pair's count and whether the
#: account's bucket had a token (-1: not asked, the pair was over already); an attempt the
#: bucket refuses is not counted against the pair, since no password was checked.
_ATTEMPT = """
local lockout, most = tonumber(ARGV[1]), tonumber(ARGV[2])
local refill, size = tonumber(ARGV[3]), tonumber(ARGV[4])
local pair = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], lockout)
if pair > most then return {pair, -1} end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
local held = redis.call('HMGET', KEYS[2], 'tokens', 'at')
local tokens = tonumber(held[1]) or size
tokens = math.min(size, tokens + (now - (tonumber(held[2]) or now)) * refill / lockout)
local taken = 0
if tokens >= 1 then tokens = tokens - 1; taken = 1 else redis.call('DECR', KEYS[1]) end
redis.call('HSET', KEYS[2], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[2], lockout)
return {pair, taken}
"""
#: Takes an attempt back. ARGV: the bucket's size, and 1 when the password was right (the
#: pair starts again) or 0 when none was checked (the pair counts one less).
_TAKE_BACK = """
if ARGV[2] == '1' then redis.call('DEL', KEYS[1])
elseif redis.call('DECR', KEYS[1]) <= 0 then redis.call('DEL', KEYS[1]) end
local tokens = tonumber(redis.call('HGET', KEYS[2], 'tokens'))
if tokens then
  redis.call('HSET', KEYS[2], 'tokens', tostring(math.min(tonumber(ARGV[1]), tokens + 1)))
end
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
        account_burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._redis = redis
        self._max = max_failures
        self._ceiling = account_ceiling
        self._burst = account_burst or min(account_ceiling, 2 * max_failures)
        self._lockout = lockout_seconds
        self._attempt = redis.register_script(_ATTEMPT)
        self._take_back = redis.register_script(_TAKE_BACK)
        self._local = _LocalCounts(clock)

    async def attempt(self, account: str, address: str) -> None:
        """Count an attempt on `account` (its id, or the name typed) from `address`;
        ResourceExhausted if it is one too many."""
        keys = _keys(account, address)
        args = [self._lockout, self._max, self._ceiling, self._burst]
        try:
            pair, taken = await self._attempt(keys=keys, args=args)
        except RedisError as error:
            _log.warning("login guard: Redis unreachable, counting in this process: %r", error)
            pair = self._local.incr(keys[0], self._lockout)
            taken = pair <= self._max and self._local.take(keys[1], *args)
            if pair <= self._max and not taken:
                self._local.give_back(keys[0], keys[1], self._burst, right=False, token=False)
        if pair > self._max:
            raise ResourceExhausted(
                "Too many log-ins for this account from your address; "
                f"try again in {_minutes(self._lockout)}."
            )
        if not taken:
            raise ResourceExhausted(
                "Too many log-ins for this account; try again in a minute, or reset your password."
            )

    async def succeeded(self, account: str, address: str) -> None:
        """The password was right: the address starts again, the account's token returns."""
        await self._give_back(account, address, right=True)

    async def unchecked(self, account: str, address: str) -> None:
        """No password was checked after all (every hashing slot busy): the attempt is undone."""
        await self._give_back(account, address, right=False)

    async def _give_back(self, account: str, address: str, right: bool) -> None:
        keys = _keys(account, address)
        try:
            await self._take_back(keys=keys, args=[self._burst, int(right)])
        except RedisError as error:
            _log.warning("login guard: Redis unreachable, counting in this process: %r", error)
            self._local.give_back(*keys, self._burst, right)


def _keys(account: str, address: str) -> list[str]:
    """Hashed, so keys hold no names or addresses; the braces keep both on one Redis slot.
    An IPv6 address counts by its /64, which one client usually holds whole."""
    digest = hashlib.sha256(account.casefold().encode()).hexdigest()[:32]
    where = hashlib.sha256(_network(address).encode()).hexdigest()[:16]
    return [f"user:login:{{{digest}}}:{where}", f"user:login-bucket:{{{digest}}}"]


def _network(address: str) -> str:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def _minutes(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class _LocalCounts:
    """Counts and buckets with an expiry in this process's memory, for while Redis is down."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self._counts: dict[str, tuple[float, float]] = {}  # key: (count or tokens, expiry)
        self._at: dict[str, float] = {}  # a bucket's last refill

    def incr(self, key: str, ttl: float) -> int:
        now = self._clock()
        count, expires = self._counts.pop(key, (0, now))
        count = count + 1 if expires > now else 1
        self._keep(key, count, now + ttl)
        return int(count)

    def take(self, key: str, lockout: float, _most: int, refill: float, size: int) -> bool:
        now = self._clock()
        tokens, expires = self._counts.pop(key, (size, now))
        if expires <= now:
            tokens = size
        tokens = min(size, tokens + (now - self._at.get(key, now)) * refill / lockout)
        taken = tokens >= 1
        self._keep(key, tokens - taken, now + lockout)
        self._at[key] = now
        return taken

    def give_back(
        self, pair: str, account: str, size: int, right: bool, token: bool = True
    ) -> None:
        count, expires = self._counts.pop(pair, (0, 0.0))
        if not right and count > 1:
            self._counts[pair] = (count - 1, expires)
        if token and account in self._counts:
            tokens, expires = self._counts[account]
            self._counts[account] = (min(size, tokens + 1), expires)

    def _keep(self, key: str, value: float, expires: float) -> None:
        self._counts[key] = (value, expires)  # re-inserted: dict order is age order
        while len(self._counts) > LOCAL_KEYS:
            oldest = next(iter(self._counts))
            del self._counts[oldest]
            self._at.pop(oldest, None)
