"""The feed's Redis layout: timelines, celebrity sets, recent posts, and the entry cache.

    feed:timeline:{reader}  sorted set: entry id -> score; what fan-out pushed
    feed:celebs:{reader}    set: the celebrities the reader follows (fan-in)
    feed:posts:{author}     sorted set: an author's newest entries (read for celebrities)
    feed:entry:{entry id}   hash: a = author id, b = the API's SleepEntry, serialized
    feed:author:{user id}   the feed's Author, serialized

Timelines hold ids, never copies of entries: an entry is cached once however
many timelines hold it. Each sorted set and set carries a sentinel member
(`~`) written with its contents, so "empty" and "missing" differ: a missing
key (never built, expired, evicted, flushed) is rebuilt from PostgreSQL, and
writers only ever touch keys that exist (the scripts below), so a fan-out can
never make a partial timeline look whole.

A sorted set is capped at the `length` newest, so it may lack older entries.
The sentinel's score is its floor: it holds every entry it should above the
floor and none at or below it. The floor is -inf until something is left out
(trimmed by a push, or cut off by a rebuild or a backfill of the newest
`length`) and only ever rises, whatever is removed later; a page that reaches
a floor continues from PostgreSQL.
Timelines and celebrity sets expire after the reader's inactivity period;
every read renews them, so fan-out cost follows active readers. A page is
read by one script (page.lua): the slices, the merge and the cached entries
and authors in a single round trip.

Memory: a sorted set of at most `zset-max-listpack-entries` members is one
compact listpack (about 50 bytes per member here); Zentry's Redis is started
with that setting above the timeline length (see infra/servers/redis.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from services.feed.domain import Key

SENTINEL = "~"
NO_FLOOR = float("-inf")  # the floor of a set that has never left anything out
PAGE_SCRIPT = Path(__file__).parent / "page.lua"
CACHE_TTL = 3 * 86400  # entry, author and posts caches: seconds

# KEYS: sorted sets; ARGV: length, floor, then score, member pairs. Adds to the sets that
# exist, one member at a time; a set that outgrows its sentinel plus the `length` newest
# drops its oldest and raises its floor to it (so a set never outgrows the compact listpack
# encoding). A member at or below a set's floor is not added: the store serves it. Returns
# how many sets it wrote to.
_PUSH = """
local length = tonumber(ARGV[1])
local written = 0
local function raise(key, floor)  -- nothing at or below `floor` stays; the sentinel marks it
  redis.call('ZREMRANGEBYSCORE', key, '-inf', floor)
  redis.call('ZADD', key, floor, '~')
  return tonumber(floor)
end
for _, key in ipairs(KEYS) do
  local held = redis.call('ZSCORE', key, '~')
  if held then
    local floor = tonumber(held)
    if tonumber(ARGV[2]) > floor then floor = raise(key, ARGV[2]) end
    for i = 3, #ARGV, 2 do
      if tonumber(ARGV[i]) > floor then
        redis.call('ZADD', key, ARGV[i], ARGV[i + 1])
        if redis.call('ZCARD', key) > length + 1 then
          floor = raise(key, redis.call('ZRANGE', key, 1, 1, 'WITHSCORES')[2])
        end
      end
    end
    written = written + 1
  end
end
return written
"""

# KEYS: sets; ARGV: members. Adds to the sets that exist (with their sentinel).
_SADD = """
for _, key in ipairs(KEYS) do
  if redis.call('SISMEMBER', key, '~') == 1 then redis.call('SADD', key, unpack(ARGV)) end
end
return #KEYS
"""

# KEYS: sorted sets (or sets, with ARGV[1] = 'S'); ARGV[2..]: members to remove from each.
_REMOVE = """
local command = ARGV[1] == 'S' and 'SREM' or 'ZREM'
for _, key in ipairs(KEYS) do redis.call(command, key, unpack(ARGV, 2)) end
return #KEYS
"""


def timeline_key(reader_id: str) -> str:
    return f"feed:timeline:{reader_id}"


def celebs_key(reader_id: str) -> str:
    return f"feed:celebs:{reader_id}"


def posts_key(author_id: str) -> str:
    return f"feed:posts:{author_id}"


def entry_key(entry_id: str) -> str:
    return f"feed:entry:{entry_id}"


def author_key(user_id: str) -> str:
    return f"feed:author:{user_id}"


@dataclass(frozen=True)
class Page:
    """What page.lua found: up to size + 1 keys, and the cached entries and authors.

    `short`: the page stopped at a floor before it was full (a capped set may
    lack what lies below), so the rest of the page is in PostgreSQL.
    `bodies` maps entry ids to serialized SleepEntries, `authors` user ids to
    serialized Authors; what the cache lacked is absent.
    """

    keys: list[Key]
    short: bool
    bodies: dict[str, bytes]
    authors: dict[str, bytes]


class Timelines:
    def __init__(self, redis: Redis, *, length: int, reader_ttl: int, batch: int = 500):
        self.redis = redis
        self.length = length
        self.reader_ttl = reader_ttl
        self._batch = batch
        self._push = redis.register_script(_PUSH)
        self._sadd = redis.register_script(_SADD)
        self._remove = redis.register_script(_REMOVE)
        self._page = redis.register_script(PAGE_SCRIPT.read_text())

    # -- writers (event handlers), existing keys only -------------------------------

    async def push(self, keys: Sequence[str], items: Sequence[Key], floor: float = NO_FLOOR) -> int:
        """Add `items` to the existing sorted sets among `keys`; one round trip for all.

        `floor`: the items are all there is above it (see `newest`), so each set's
        floor rises to it. Returns how many of the sets existed (were written).
        """
        return (await self.push_all([(keys, items, floor)]))[0]

    async def push_all(self, pushes: Sequence[tuple[Sequence[str], Sequence[Key], float]]):
        """Several pushes (keys, items, floor) in one round trip; each one's count of sets."""
        calls: list[int] = []  # per push, its script calls
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, items, floor in pushes:
                calls.append(0)
                if not keys or (not items and floor == NO_FLOOR):
                    continue
                args = [self.length, floor]
                for item in items:
                    args += [item.score, item.entry_id]
                for start in range(0, len(keys), self._batch):
                    await self._push(keys[start : start + self._batch], args, client=pipe)
                    calls[-1] += 1
            written = iter(await pipe.execute() if any(calls) else [])
            return [sum(next(written) for _ in range(n)) for n in calls]

    async def add_celebrity(self, reader_ids: Sequence[str], author_id: str) -> None:
        keys = [celebs_key(r) for r in reader_ids]
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(keys), self._batch):
                await self._sadd(keys[start : start + self._batch], [author_id], client=pipe)
            await pipe.execute()

    async def remove(self, keys: Sequence[str], members: Iterable[str], *, sets: bool = False):
        """Remove `members` from each of `keys` (sorted sets, or sets with `sets=True`)."""
        members = list(members)
        if not keys or not members:
            return
        args = ["S" if sets else "Z", *members]
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(keys), self._batch):
                await self._remove(keys[start : start + self._batch], args, client=pipe)
            await pipe.execute()

    async def members(self, key: str) -> list[str]:
        """Every entry id a sorted set holds (at most its length: a timeline stays small)."""
        return [m.decode() for m in await self.redis.zrange(key, 0, -1) if m != SENTINEL.encode()]

    async def cache_entry(self, entry_id: str, author_id: str, body: bytes) -> None:
        await self.cache_entries([(entry_id, author_id, body)])

    async def cache_entries(self, entries: Sequence[tuple[str, str, bytes]]) -> None:
        """(entry id, author id, body) of each, in one round trip."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for entry_id, author_id, body in entries:
                key = entry_key(entry_id)
                pipe.hset(key, mapping={"a": author_id, "b": body})
                pipe.expire(key, CACHE_TTL)
            await pipe.execute()

    async def forget_entry(self, entry_id: str) -> None:
        await self.redis.delete(entry_key(entry_id))

    async def forget_user(self, user_id: str, entry_ids: Sequence[str]) -> None:
        """A deleted user's own keys (timeline, celebrities, posts, cached profile) and their
        cached entries."""
        keys = [timeline_key(user_id), celebs_key(user_id), posts_key(user_id)]
        keys += [author_key(user_id), *(entry_key(e) for e in entry_ids)]
        for start in range(0, len(keys), self._batch):
            await self.redis.delete(*keys[start : start + self._batch])

    async def cache_author(self, user_id: str, body: bytes) -> None:
        await self.redis.set(author_key(user_id), body, ex=CACHE_TTL)

    # -- rebuilds (under the store's locks) ------------------------------------------

    async def write_reader(
        self, reader_id: str, items: Sequence[Key], floor: float, celebs: Iterable[str]
    ):
        """Replace a reader's timeline and celebrity set, atomically, with the sentinels.

        `items` and `floor` as `newest` cuts them.
        """
        timeline, celebrities = timeline_key(reader_id), celebs_key(reader_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(timeline, celebrities)
            pipe.zadd(timeline, {SENTINEL: floor, **_mapping(items)})
            pipe.sadd(celebrities, SENTINEL, *celebs)
            pipe.expire(timeline, self.reader_ttl)
            pipe.expire(celebrities, self.reader_ttl)
            await pipe.execute()

    async def write_posts(self, author_id: str, items: Sequence[Key], floor: float) -> None:
        """Replace an author's recent posts; `items` and `floor` as `newest` cuts them."""
        key = posts_key(author_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.zadd(key, {SENTINEL: floor, **_mapping(items)})
            pipe.expire(key, CACHE_TTL)
            await pipe.execute()

    # -- reads ------------------------------------------------------------------------

    async def page(self, reader_id: str, cursor: Key | None, size: int) -> Page | list[str] | None:
        """One page below `cursor` (page.lua): a Page, the celebrities whose posts are not
        cached (a list), or None when the reader's timeline is not built.

        Renews the reader's keys' expiry: reading is what keeps a reader active.
        """
        reply = await self._page(
            [timeline_key(reader_id), celebs_key(reader_id)],
            [
                cursor.score if cursor else "",
                cursor.entry_id if cursor else "",
                size,
                self.reader_ttl,
                CACHE_TTL,
            ],
        )
        if reply[0] == b"missing":
            return None
        if reply[0] == b"posts":
            return [author.decode() for author in reply[1:]]
        count = reply[2]
        flat = reply[3 : 3 + 2 * count]
        keys = [Key(int(flat[i + 1]), flat[i].decode()) for i in range(0, len(flat), 2)]
        at = 3 + 2 * count
        shown = min(count, size)
        bodies = {
            k.entry_id: b for k, b in zip(keys[:shown], reply[at : at + shown], strict=True) if b
        }
        at += shown
        profiles = reply[at + 1 : at + 1 + 2 * reply[at]]
        authors = {
            profiles[i].decode(): profiles[i + 1]
            for i in range(0, len(profiles), 2)
            if profiles[i + 1]
        }
        return Page(keys, bool(reply[1]), bodies, authors)

    async def refill(self, entries: dict[str, tuple[str, bytes]], authors: dict[str, bytes]):
        """Put back what a read found missing; never over a newer value a handler wrote."""
        if not entries and not authors:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry_id, (author_id, body) in entries.items():
                key = entry_key(entry_id)
                pipe.hsetnx(key, "a", author_id)
                pipe.hsetnx(key, "b", body)
                pipe.expire(key, CACHE_TTL)
            for user_id, body in authors.items():
                pipe.set(author_key(user_id), body, ex=CACHE_TTL, nx=True)
            await pipe.execute()


def newest(keys: Sequence[Key], length: int) -> tuple[list[Key], float]:
    """What a set capped at `length` holds of `keys`, and its floor.

    `keys` are newest first, the `length + 1` newest of what the set stands for
    (or all of it, if fewer). The floor is the score of the first one left out,
    and nothing at that score is kept (equal scores are cut together); with
    none left out it is NO_FLOOR.
    """
    if len(keys) <= length:
        return list(keys), NO_FLOOR
    floor = keys[length].score
    return [key for key in keys[:length] if key.score > floor], floor


def _mapping(items: Iterable[Key]) -> dict[str, int]:
    return {item.entry_id: item.score for item in items}
