"""The global boards in Redis: one sorted set per metric and window, and the window's totals.

    lb:totals:{window}          hash: user id -> "seconds:nights" (what a standing shows)
    lb:board:{metric}:{window}  sorted set: user id -> domain.board_score

Only users ranked on the global boards (services.kit.visibility) are in them;
the following scope reads scores from PostgreSQL. (The keys end in `:2` since
they hold only those: boards from before were everyone's.)

A window's four keys are written together by a rebuild (from PostgreSQL),
each with a sentinel (`~`) so an empty board differs from a missing one; the
consumer updates only windows whose four keys all exist (a script), and drops
a window that lost one, so it never creates or keeps a partial board. A read
needs the board and the totals both; what is missing (evicted, flushed,
expired) is rebuilt on demand. Past windows expire `retention` after they end; all-time
never does.

The consumer's update is one script call per window (`_UPDATE`), which computes the
totals and the board scores itself, in Lua, where the data is:

    KEYS  totals key, then the board keys in METRICS order
    ARGV  min nights (the window kind's, for average-duration),
          then per user "user-id seconds nights since", since being
          domain.since_epoch(reached_at) (one argument a user: packing them is
          the caller's cost; nights 0 or less: the user comes off the totals and
          every board)

domain.py stays the reference (rebuilds and reads score in Python with it);
tests/integration/test_leaderboard_scores.py checks on a real Redis that the
two agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from redis.asyncio import Redis

from services.kit import redis_client
from services.leaderboard import domain
from services.leaderboard.domain import METRICS, Totals
from services.leaderboard.store import Score

SENTINEL = "~"
#: The key services.kit.redis_client.durable writes to learn the replicas have the rest.
DURABLE_PROBE = "lb:durable"

# The rules of domain.value, domain.qualifies and domain.board_score, in Lua: domain.py is
# the reference, tests/integration/test_leaderboard_scores.py holds the two together. Lua
# numbers are doubles, exact for integers below 2**53 (a score is, by MAX_VALUE's clamp), and
# so is math.floor of a quotient of such integers (Python's //); a score goes to ZADD as the
# integer's digits ('%.0f'), never as Lua's own number to string ("%.14g", rounded).
_RULES = f"""
local TIE_SPAN, MAX_VALUE = {domain.TIE_SPAN}, {domain.MAX_VALUE}
local METRICS = {{{", ".join(f"'{m}'" for m in METRICS)}}}
"""
_RULES += """
local function value(metric, seconds, nights)
  if metric == 'nights' then return nights end
  if metric == 'total-duration' then return math.floor(seconds / 60) end
  if nights == 0 then return 0 end
  return math.floor(math.floor(seconds / nights) / 60)
end
local function qualifies(metric, nights, min_nights)
  if nights <= 0 then return false end
  return metric ~= 'average-duration' or nights >= min_nights
end
local function board_score(value_, since)
  since = math.min(math.max(since, 0), TIE_SPAN - 1)
  return string.format('%.0f', math.min(value_, MAX_VALUE) * TIE_SPAN + (TIE_SPAN - 1 - since))
end
"""

# KEYS and ARGV: see the module's docstring. A window with any key gone is dropped whole,
# to be rebuilt on its next read.
_UPDATE = (
    _RULES
    + """
local whole = redis.call('HEXISTS', KEYS[1], '~') == 1
for b = 2, #KEYS do whole = whole and redis.call('ZSCORE', KEYS[b], '~') ~= false end
if not whole then
  redis.call('DEL', unpack(KEYS))
  return 0
end
local min_nights = tonumber(ARGV[1])
for i = 2, #ARGV do
  local user, s, n, t = string.match(ARGV[i], '^(%S+) (%S+) (%S+) (%S+)$')
  local seconds, nights, since = tonumber(s), tonumber(n), tonumber(t)
  if nights > 0 then redis.call('HSET', KEYS[1], user, s .. ':' .. n)
  else redis.call('HDEL', KEYS[1], user) end
  for b, metric in ipairs(METRICS) do
    if qualifies(metric, nights, min_nights) then
      redis.call('ZADD', KEYS[1 + b], board_score(value(metric, seconds, nights), since), user)
    else redis.call('ZREM', KEYS[1 + b], user) end
  end
end
return 1
"""
)

# Whether a board and its window's totals are both there (with their sentinels).
_BOTH = """
local function missing()
  return not redis.call('ZSCORE', KEYS[1], '~') or redis.call('HEXISTS', KEYS[2], '~') == 0
end
"""

# KEYS: board, totals; ARGV: cursor score ('' for the top), cursor user, size.
# {'missing'} or {'ok', rank of the first (1-based), n, user1, score1, ..., totals1, ...}
_PAGE = (
    _BOTH
    + """
if missing() then return {'missing'} end
local size, rows = tonumber(ARGV[3]), {}
if ARGV[1] ~= '' then
  local ties = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1], 'WITHSCORES')
  for i = #ties - 1, 1, -2 do
    if ties[i] < ARGV[2] then rows[#rows + 1] = ties[i]; rows[#rows + 1] = ties[i + 1] end
  end
end
local top = ARGV[1] == '' and '+inf' or ('(' .. ARGV[1])
local rest = redis.call('ZREVRANGEBYSCORE', KEYS[1], top, '(-inf', 'WITHSCORES',
                        'LIMIT', 0, size + 1)
for i = 1, #rest do rows[#rows + 1] = rest[i] end
local n = math.min(#rows / 2, size + 1)
local out = {'ok', 0, n}
if n > 0 then out[2] = redis.call('ZREVRANK', KEYS[1], rows[1]) + 1 end
for i = 1, 2 * n do out[#out + 1] = rows[i] end
for i = 1, 2 * n, 2 do out[#out + 1] = redis.call('HGET', KEYS[2], rows[i]) end
return out
"""
)

# KEYS: board, totals; ARGV: user, radius. {'missing'}, {'ok', 0} (not on the board) or
# {'ok', rank of the first, n, user1, score1, ..., totals1, ...}.
_AROUND = (
    _BOTH
    + """
if missing() then return {'missing'} end
local rank = redis.call('ZREVRANK', KEYS[1], ARGV[1])
if not rank then return {'ok', 0} end
local first = math.max(0, rank - tonumber(ARGV[2]))
local rows = redis.call('ZREVRANGE', KEYS[1], first, rank + tonumber(ARGV[2]), 'WITHSCORES')
if rows[#rows - 1] == '~' then rows[#rows] = nil; rows[#rows] = nil end
local out = {'ok', first + 1, #rows / 2}
for i = 1, #rows do out[#out + 1] = rows[i] end
for i = 1, #rows, 2 do out[#out + 1] = redis.call('HGET', KEYS[2], rows[i]) end
return out
"""
)


def totals_key(window_id: str) -> str:
    return f"lb:totals:{window_id}:2"


def board_key(metric: str, window_id: str) -> str:
    return f"lb:board:{metric}:{window_id}:2"


def _keys(window_id: str) -> list[str]:
    return [totals_key(window_id), *(board_key(m, window_id) for m in METRICS)]


@dataclass(frozen=True)
class Row:
    """One user on a board: their score there and their sums in the window."""

    user_id: str
    score: int
    totals: Totals


@dataclass(frozen=True)
class Slice:
    first_rank: int  # of rows[0]; 0 when the user asked about is not on the board
    rows: list[Row]


class Boards:
    def __init__(self, redis: Redis, min_nights: dict[str, int], retention: timedelta):
        self.redis = redis
        self.min_nights = min_nights
        self.retention = retention
        self._update = redis.register_script(_UPDATE)
        self._page = redis.register_script(_PAGE)
        self._around = redis.register_script(_AROUND)

    def scores(self, score: Score) -> list[str]:
        """The user's score on each board of the window ('' where they do not qualify), in
        Python: for rebuilds and reads (update's script computes the same in Lua)."""
        kind = domain.kind_of(score.window_id)
        totals = Totals(score.seconds, score.nights)
        return [
            str(domain.board_score(domain.value(m, totals), score.reached_at))
            if domain.qualifies(m, kind, totals, self.min_nights)
            else ""
            for m in METRICS
        ]

    async def update(self, changed: Iterable[Score], ranked: set[str]) -> None:
        """Changed scores into the windows that are in Redis, those of users not in `ranked`
        taken off; one round trip. The script computes the totals and board scores."""
        by_window = update_args(changed, ranked, self.min_nights)
        if not by_window:
            return
        writing_to = redis_client.primary(self.redis)
        async with self.redis.pipeline(transaction=False) as pipe:
            for window_id, args in by_window.items():
                await self._update(_keys(window_id), args, client=pipe)
            await pipe.execute()
        # On the replicas before the batch commits: a failover must not lose what it did.
        await redis_client.durable(self.redis, DURABLE_PROBE, writing_to)

    async def write_window(self, window_id: str, scores: list[Score], now: datetime) -> None:
        """Replace the window's totals and boards (a rebuild), with its expiry."""
        keys = _keys(window_id)
        boards: list[dict[str, float]] = [{SENTINEL: float("-inf")} for _ in METRICS]
        totals = {SENTINEL: "0:0"}
        for score in scores:
            totals[score.user_id] = f"{score.seconds}:{score.nights}"
            for board, value in zip(boards, self.scores(score), strict=True):
                if value:
                    board[score.user_id] = int(value)
        ttl = self._ttl(window_id, now)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(*keys)
            pipe.hset(keys[0], mapping=totals)
            for key, board in zip(keys[1:], boards, strict=True):
                pipe.zadd(key, board)
            if ttl is not None:
                for key in keys:
                    pipe.expire(key, ttl)
            await pipe.execute()

    def _ttl(self, window_id: str, now: datetime) -> int | None:
        """Seconds until `retention` after the window has ended everywhere; None for all-time."""
        kind = domain.kind_of(window_id)
        if kind == domain.ALL_TIME:
            return None
        _first, last = domain.first_and_last_day(kind, domain.day_of(window_id))
        ended = datetime.combine(last + timedelta(days=2), time(), UTC)  # every zone is past it
        return max(60, int((ended + self.retention - now).total_seconds()))

    async def page(self, metric: str, window_id: str, cursor, size: int) -> Slice | None:
        """Up to size + 1 rows below `cursor` (a (score, user) pair); None if not in Redis."""
        args = [cursor[0], cursor[1], size] if cursor else ["", "", size]
        reply = await self._page([board_key(metric, window_id), totals_key(window_id)], args)
        return _slice(reply)

    async def around(self, metric: str, window_id: str, user_id: str, radius: int):
        reply = await self._around(
            [board_key(metric, window_id), totals_key(window_id)], [user_id, radius]
        )
        return _slice(reply)

    def rows(self, metric: str, scores: Iterable[Score]) -> list[Row]:
        """Those of `scores` that qualify for the board, best first (as the sorted set)."""
        index = METRICS.index(metric)
        rows = [
            Row(score.user_id, int(value), Totals(score.seconds, score.nights))
            for score in scores
            if (value := self.scores(score)[index])
        ]
        return sorted(rows, key=lambda r: (r.score, r.user_id), reverse=True)


def update_args(
    changed: Iterable[Score], ranked: set[str], min_nights: dict[str, int]
) -> dict[str, list[str | int]]:
    """_UPDATE's ARGV for each window: its min nights, then per score "user-id seconds nights
    since" (domain.since_epoch(reached_at)); "user-id 0 0 0" for a user not in `ranked`."""
    by_window: dict[str, list[str | int]] = {}
    for score in changed:
        args = by_window.get(score.window_id)
        if args is None:
            args = by_window[score.window_id] = [min_nights[domain.kind_of(score.window_id)]]
        if score.user_id in ranked:
            since = domain.since_epoch(score.reached_at)
            args.append(f"{score.user_id} {score.seconds} {score.nights} {since}")
        else:
            args.append(f"{score.user_id} 0 0 0")
    return by_window


def _totals(raw: bytes | None) -> Totals:
    seconds, _, nights = (raw or b"0:0").decode().partition(":")
    return Totals(int(seconds), int(nights))


def _slice(reply: list) -> Slice | None:
    if reply[0] == b"missing":
        return None
    if reply[1] == 0:
        return Slice(0, [])
    count = reply[2]
    flat, sums = reply[3 : 3 + 2 * count], reply[3 + 2 * count :]
    rows = [
        Row(flat[2 * i].decode(), int(float(flat[2 * i + 1])), _totals(sums[i]))
        for i in range(count)
    ]
    return Slice(reply[1], rows)
