"""Answering board queries: which window, whose standings, from Redis or PostgreSQL.

A window is picked in the caller's calendar (their profile's time zone, read
from the user service so a change they just made counts; services.kit.profiles):
the one containing `date`, or today. The global scope reads the board's sorted
set (one script call per page or neighbourhood), which ranks only those who
chose to be ranked (services.kit.visibility). A board missing from Redis is
rebuilt from `scores` first; with Redis unreachable, the global scope ranks
`scores` itself, in the same order. The following scope ranks, from `scores`,
the caller and the people they follow who let them see their nights (or stand
on the global boards anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from google.protobuf import duration_pb2
from zentry.leaderboard.v1 import leaderboard_service_pb2 as pb

from services.kit import dates, paging, wellknown
from services.kit.auth import Caller
from services.kit.db import Database
from services.kit.errors import InvalidArgument
from services.kit.fallback import RedisFallback
from services.kit.profiles import OwnProfiles
from services.leaderboard import domain, store
from services.leaderboard.boards import Boards, Row, Slice
from services.leaderboard.domain import Totals
from services.leaderboard.user_cache import UserCache

#: How far ahead a board may be asked for: a window still under way, not one whose keys
#: Redis would keep for months with nothing in them.
BOARDS_AHEAD = timedelta(days=31)


@dataclass(frozen=True)
class Query:
    metric: str
    kind: str
    scope: str
    window: pb.Window

    @property
    def board(self) -> str:
        """What a page token is bound to (AIP-158)."""
        return f"{self.metric}/{self.window.id}/{self.scope}"


class LeaderboardReader:
    def __init__(self, db: Database, boards: Boards, users: UserCache, profiles: OwnProfiles):
        self._db = db
        self._boards = boards
        self._user_cache = users
        self._profiles = profiles
        self._redis = RedisFallback("boards")

    async def query(self, caller: Caller, metric: str, kind: str, day: str, scope: str) -> Query:
        metric, kind = domain.parse_metric(metric), domain.parse_window(kind)
        scope = domain.parse_scope(scope)
        return Query(metric, kind, scope, window_view(kind, day, await self._zone_of(caller)))

    async def _zone_of(self, caller: Caller) -> str:
        """The caller's zone as the user service has it now; the copy's when it cannot say."""
        fresh = await self._profiles.fresh(caller)
        if fresh is not None:
            return fresh.time_zone or "UTC"
        me = (await self._user_cache.users([caller.user_id])).get(caller.user_id)
        return me.time_zone if me else "UTC"

    async def top(self, caller: Caller, query: Query, size: int, token: str) -> pb.Leaderboard:
        cursor = _decode(token, query.board)
        if query.metric == domain.STREAK and query.scope == "global":
            part = await self._streak_page(query, cursor, size)
        elif query.scope == "global":
            part = await self._global_page(query, cursor, size)
        else:
            rows = await self._following_rows(caller, query)
            below = [r for r in rows if cursor is None or (r.score, r.user_id) < cursor]
            first = len(rows) - len(below) + 1
            part = Slice(first, below[: size + 1])
        more = len(part.rows) > size
        rows = part.rows[:size]
        return pb.Leaderboard(
            metric=query.metric,
            scope=query.scope,
            window=query.window,
            standings=await self._standings(query, rows, part.first_rank),
            next_page_token=_encode(rows[-1], query.board) if more else "",
        )

    async def around(self, caller: Caller, query: Query, radius: int) -> pb.Leaderboard:
        if query.metric == domain.STREAK and query.scope == "global":
            part = await self._streak_around(query, caller.user_id, radius)
        elif query.scope == "global":
            part = await self._global_around(query, caller.user_id, radius)
        else:
            rows = await self._following_rows(caller, query)
            mine = next((i for i, r in enumerate(rows) if r.user_id == caller.user_id), None)
            if mine is None:
                part = Slice(0, [])
            else:
                first = max(0, mine - radius)
                part = Slice(first + 1, rows[first : mine + radius + 1])
        standings = await self._standings(query, part.rows, part.first_rank)
        me = next((s for s in standings if s.user_id == caller.user_id), None)
        if me is None:  # not on this board (yet): rank 0, with what the user has so far
            me = (await self._standings(query, [await self._own_row(caller, query)], 0))[0]
        return pb.Leaderboard(
            metric=query.metric,
            scope=query.scope,
            window=query.window,
            standings=standings,
            me=me,
        )

    # -- global scope --------------------------------------------------------------

    async def _global_page(self, query: Query, cursor, size: int) -> Slice:
        def below_cursor(rows: list[Row]) -> Slice:
            below = [r for r in rows if cursor is None or (r.score, r.user_id) < cursor]
            return Slice(len(rows) - len(below) + 1, below[: size + 1])

        return await self._global(
            query,
            lambda: self._boards.page(query.metric, query.window.id, cursor, size),
            below_cursor,
        )

    async def _global_around(self, query: Query, user_id: str, radius: int) -> Slice:
        def around_user(rows: list[Row]) -> Slice:
            mine = next((i for i, r in enumerate(rows) if r.user_id == user_id), None)
            if mine is None:
                return Slice(0, [])
            first = max(0, mine - radius)
            return Slice(first + 1, rows[first : mine + radius + 1])

        return await self._global(
            query,
            lambda: self._boards.around(query.metric, query.window.id, user_id, radius),
            around_user,
        )

    async def _global(self, query: Query, from_redis, from_rows) -> Slice:
        """`from_redis()`, the slice from the Redis board; else `from_rows(rows)`, the same
        slice of the whole board as PostgreSQL ranks it."""
        part = await self._from_redis(query, from_redis)
        if part is not None:
            return part
        return from_rows(await self._ranked_from_db(query))

    # -- following scope -----------------------------------------------------------

    async def _following_rows(self, caller: Caller, query: Query) -> list[Row]:
        """The caller and those they follow who let them see their nights (or are ranked
        globally), on the board, best first: from PostgreSQL (the Redis boards hold only
        those ranked globally), one indexed lookup of at most ZENTRY_MAX_FOLLOWING + 1
        scores."""
        async with self._db.transaction() as session:
            people = [caller.user_id, *await store.visible_followees(session, caller.user_id)]
            if query.metric == domain.STREAK:
                return _streak_rows(await store.streaks_of(session, query.window.id, people))
            scores = await store.scores_of(session, query.window.id, people)
        return self._boards.rows(query.metric, scores)

    # -- streak boards: ranked in PostgreSQL (streaks.py) ----------------------------

    async def _streak_page(self, query: Query, cursor, size: int) -> Slice:
        window = query.window.id
        async with self._db.transaction() as session:
            if cursor is None:
                return Slice(
                    1, _streak_rows(await store.streak_page(session, window, None, size + 1))
                )
            value, reached = domain.value_of(cursor[0]), domain.reached_of(cursor[0])
            after = store.Streak(window, cursor[1], value, reached)
            above = await store.streaks_above(session, after)
            found = await store.streak_page(session, window, (value, reached, cursor[1]), size + 1)
        return Slice(above + 2, _streak_rows(found))

    async def _streak_around(self, query: Query, user_id: str, radius: int) -> Slice:
        window = query.window.id
        async with self._db.transaction() as session:
            found = await store.streaks_of(session, window, [user_id])
            if not found or not await store.ranked(session, [user_id]):
                return Slice(0, [])
            mine = found[0]
            above = await store.streaks_above(session, mine)
            before = await store.streaks_just_above(session, mine, radius)
            after = await store.streak_page(
                session, window, (mine.value, mine.reached_at, mine.user_id), radius
            )
        return Slice(above + 1 - len(before), _streak_rows([*before, mine, *after]))

    # -- where the rows come from --------------------------------------------------

    async def _from_redis(self, query: Query, read):
        """`read()` from Redis, rebuilding the window if it is missing; None: use PostgreSQL."""

        async def read_or_rebuild():
            found = await read()
            if found is None:
                await self._rebuild(query.window.id)
                found = await read()
            return found

        return await self._redis.attempt(read_or_rebuild)

    async def _rebuild(self, window_id: str) -> None:
        async with self._db.transaction() as session:
            await store.lock_windows(session, [window_id], shared=False)
            scores = await store.window_scores(session, window_id)
            await self._boards.write_window(window_id, scores, datetime.now(UTC))

    async def _ranked_from_db(self, query: Query) -> list[Row]:
        """The whole board from `scores`, in the boards' order: slower, but the same answer."""
        async with self._db.transaction() as session:
            scores = await store.window_scores(session, query.window.id)
        return self._boards.rows(query.metric, scores)

    async def _own_row(self, caller: Caller, query: Query) -> Row:
        if query.metric == domain.STREAK:
            async with self._db.transaction() as session:
                mine = await store.streaks_of(session, query.window.id, [caller.user_id])
            return _streak_rows(mine)[0] if mine else Row(caller.user_id, 0, Totals(0, 0))
        async with self._db.transaction() as session:
            mine = await store.user_score(session, query.window.id, caller.user_id)
        totals = Totals(mine.seconds, mine.nights) if mine else Totals(0, 0)
        return Row(caller.user_id, 0, totals)

    async def _standings(self, query: Query, rows: list[Row], first_rank: int) -> list[pb.Standing]:
        users = await self._user_cache.users(r.user_id for r in rows)
        streak = query.metric == domain.STREAK
        if streak and rows:  # the streak boards' rows carry no sums: the window's
            async with self._db.transaction() as session:
                sums = await store.scores_of(session, query.window.id, [r.user_id for r in rows])
            totals = {s.user_id: Totals(s.seconds, s.nights) for s in sums}
            rows = [Row(r.user_id, r.score, totals.get(r.user_id, r.totals)) for r in rows]
        standings = []
        for i, row in enumerate(rows):
            user = users.get(row.user_id)
            t = row.totals
            standings.append(
                pb.Standing(
                    rank=first_rank + i if first_rank else 0,
                    user_id=row.user_id,
                    username=user.username if user else "",
                    display_name=user.display_name if user else "",
                    total_duration=duration_pb2.Duration(seconds=t.seconds),
                    nights=t.nights,
                    average_duration=duration_pb2.Duration(
                        seconds=t.seconds // t.nights if t.nights else 0
                    ),
                    streak=domain.value_of(row.score) if streak else 0,
                )
            )
        return standings


def window_view(kind: str, day: str, time_zone: str, now: datetime | None = None) -> pb.Window:
    """The window of `kind` containing `day` (default: today), as seen from `time_zone`."""
    zone = ZoneInfo(time_zone)
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    picked = (
        dates.check_date(_parse_day(day), "date", now or datetime.now(UTC), BOARDS_AHEAD)
        if day
        else today
    )
    window = pb.Window(kind=kind, id=domain.window_id(kind, picked), time_zone=time_zone)
    span = domain.first_and_last_day(kind, picked)
    if span is None:
        window.current = True
        return window
    first, last = span
    window.start_date, window.end_date = first.isoformat(), last.isoformat()
    start = datetime.combine(first, datetime.min.time(), zone)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), zone)
    window.start_time.CopyFrom(wellknown.timestamp(start))
    window.end_time.CopyFrom(wellknown.timestamp(end))
    window.current = first <= today <= last
    return window


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text) if len(text) == 10 else _bad_date(text)
    except ValueError:
        return _bad_date(text)


def _bad_date(text: str):
    raise InvalidArgument.field("date", f"must be a date as YYYY-MM-DD, got {text!r}")


def _streak_rows(found: list[store.Streak]) -> list[Row]:
    """Streaks as board rows, best first (the boards' order: score, then user id, descending)."""
    rows = [Row(s.user_id, domain.board_score(s.value, s.reached_at), Totals(0, 0)) for s in found]
    return sorted(rows, key=lambda r: (r.score, r.user_id), reverse=True)


def _encode(row: Row, board: str) -> str:
    return paging.encode_token({"s": row.score, "u": row.user_id}, board)


def _decode(token: str, board: str):
    cursor = paging.decode_token(token, {"s", "u"}, board)
    if cursor is None:
        return None
    if not isinstance(cursor["s"], int) or not isinstance(cursor["u"], str):
        raise InvalidArgument.field("page_token", "is damaged; start again without it")
    return cursor["s"], cursor["u"]
