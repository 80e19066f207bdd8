"""Unique visitors: Redis HyperLogLogs per 15-minute bucket, kept durable in PostgreSQL.

A HyperLogLog counts distinct visitors in 12 KB at most with a standard error
of 0.81%, and merges: the visitors of a day are the union of its 96 buckets,
of a range the union of all of them, so the count over a range is never a
sum that counts a returning visitor twice. Adding the same visitor again
changes nothing, so redelivered events are harmless here by nature.

Redis does the counting; PostgreSQL keeps each bucket's sketch (Redis's own
serialization) so Redis is only a cache: the consumer, holding the bucket's
row lock, merges the stored sketch into Redis, adds the batch's visitors and
stores the result back in the same transaction; a query restores any bucket
Redis has lost (or evicted: keys expire after `TTL`) from PostgreSQL first.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.product import store
from services.analytics.product.periods import BUCKET

TTL = timedelta(days=35)
PREFIX = "an:visitors:"

# KEYS: bucket keys. ARGV: ttl, then per key: stored sketch, n, n visitor ids.
# Returns each key's serialized sketch after the additions.
_ADD = """
local ttl = tonumber(ARGV[1])
local pos = 2
local out = {}
for i, key in ipairs(KEYS) do
  local stored = ARGV[pos]
  local n = tonumber(ARGV[pos + 1])
  pos = pos + 2
  if #stored > 0 then
    local scratch = key .. ':restore'
    redis.call('SET', scratch, stored)
    redis.call('PFMERGE', key, scratch)
    redis.call('DEL', scratch)
  end
  local first = pos
  while first < pos + n do
    local last = math.min(first + 999, pos + n - 1)
    redis.call('PFADD', key, unpack(ARGV, first, last))
    first = last + 1
  end
  pos = pos + n
  redis.call('PEXPIRE', key, ttl)
  out[i] = redis.call('GET', key)
end
return out
"""


def key(bucket: datetime) -> str:
    return f"{PREFIX}{int(bucket.timestamp())}"


class Uniques:
    def __init__(self, redis: Redis):
        self._redis = redis
        self._add = redis.register_script(_ADD)

    async def add(self, session: AsyncSession, visitors: dict[datetime, set[str]]) -> None:
        """Add each bucket's visitors, in the caller's transaction (see the module's doc)."""
        if not visitors:
            return
        stored = await store.lock_sketches(session, visitors)
        buckets = sorted(visitors)
        args: list = [int(TTL.total_seconds() * 1000)]
        for bucket in buckets:
            args += [stored.get(bucket, b""), len(visitors[bucket]), *sorted(visitors[bucket])]
        sketches = await self._add(keys=[key(b) for b in buckets], args=args)
        await store.save_sketches(session, dict(zip(buckets, sketches, strict=True)))

    async def count(
        self, session: AsyncSession, periods: list[list[datetime]]
    ) -> tuple[list[int], int]:
        """Distinct visitors in each period (a list of its buckets), and over all of them."""
        everything = sorted({b for period in periods for b in period})
        if not everything:
            return [0] * len(periods), 0
        wanted = set(everything)
        present = [
            b
            for b in await store.sketch_buckets(session, everything[0], everything[-1] + BUCKET)
            if b in wanted
        ]
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket in present:
                pipe.exists(key(bucket))
            exists = await pipe.execute()
        missing = [b for b, there in zip(present, exists, strict=True) if not there]
        stored = await store.sketches(session, missing)
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket in missing:
                pipe.set(key(bucket), stored[bucket], px=TTL, nx=True)
            known = set(present)
            for period in periods:
                pipe.pfcount(*[key(b) for b in period if b in known] or ["an:visitors:none"])
            pipe.pfcount(*[key(b) for b in present] or ["an:visitors:none"])
            results = await pipe.execute()
        counts = results[len(missing) :]
        return [int(c) for c in counts[:-1]], int(counts[-1])
