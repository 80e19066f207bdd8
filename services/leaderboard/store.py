"""The leaderboards' durable state in PostgreSQL: the ledger of score changes, and scores.

`score_changes` has one row per change a sleep event made, keyed by what
happened to the entry (projector.changes_of): a redelivered or replayed event
inserts nothing, and only the deltas of what was inserted move `scores`, in
the same statement. So the database, not
luck, makes each event count once, and a whole batch is one round trip.
`scores` holds each user's sums per window and when they last changed (the
tie-break); the Redis boards are a cache of it. A ledger row is kept
ZENTRY_LEADERBOARD_LEDGER_RETENTION_DAYS after it was written (`recorded_at`;
services.leaderboard.config says why that is enough), then swept.

Locks: a batch takes each window it touches shared, a board rebuild takes
its window exclusively (transaction-scoped advisory locks, one per group of
windows), so a rebuild never reads scores that a batch is about to write past
it. Whether a user is ranked on the global boards (services.kit.visibility)
changes under their user lock taken exclusively, which every batch with their
scores takes shared first: a change of it and a change of their scores are
never half seen by each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

from sqlalchemy import Boolean, Column, Integer, MetaData, Table, Text, any_, or_, select, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit import visibility
from services.kit.db import delete_if_present, insert_if_absent, lock_keys
from services.leaderboard import domain

metadata = MetaData()
_uuid = UUID(as_uuid=False)
#: The user service's default nightly goal, until a profile says otherwise.
DEFAULT_GOAL_SECONDS = 8 * 3600

users = Table(
    "users",
    metadata,
    Column("user_id", _uuid, primary_key=True),
    Column("username", Text, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("time_zone", Text, nullable=False),
    Column("nights_visible_to", Text, nullable=False, server_default=visibility.DEFAULT),
    Column("show_on_global_boards", Boolean, nullable=False, server_default="false"),
    Column("goal_seconds", Integer, nullable=False, server_default=str(DEFAULT_GOAL_SECONDS)),
)
#: Who is ranked on the global boards (visibility.on_global_boards), as SQL.
_RANKED = or_(users.c.nights_visible_to == visibility.EVERYONE, users.c.show_on_global_boards)

follows = Table(
    "follows",
    metadata,
    Column("follower_id", _uuid, primary_key=True),
    Column("followee_id", _uuid, primary_key=True),
)

_WINDOW_LOCKS, _USER_LOCKS = 3, 9
#: Users share this many locks: a batch of thousands takes at most this many.
USER_STRIPES = 256


class Change(NamedTuple):
    """What one change of an entry did to one user's sums in one window (a tuple: a batch
    makes tens of thousands)."""

    change_id: str
    window_id: str
    user_id: str
    seconds: int
    nights: int
    occurred_at: datetime


class Score(NamedTuple):
    window_id: str
    user_id: str
    seconds: int
    nights: int
    reached_at: datetime


@dataclass(frozen=True)
class UserRow:
    user_id: str
    username: str
    display_name: str
    time_zone: str
    nights_visible_to: str = visibility.DEFAULT
    show_on_global_boards: bool = False
    goal_seconds: int = DEFAULT_GOAL_SECONDS

    @property
    def ranked(self) -> bool:
        return visibility.on_global_boards(self.nights_visible_to, self.show_on_global_boards)


async def lock_windows(session: AsyncSession, windows: Iterable[str], *, shared: bool) -> None:
    """A lock per window group (`_lock_group`): a user's change of ranking locks every window
    they ever scored in, which would be a lock a day of their history otherwise."""
    await lock_keys(session, _WINDOW_LOCKS, {_lock_group(w) for w in windows}, shared=shared)


def _lock_group(window_id: str) -> str:
    """Daily windows by month, weekly and monthly ones by year (window ids begin with it)."""
    kind = domain.kind_of(window_id)
    if kind == "daily":
        return f"d{window_id[:7]}"
    if kind in ("weekly", "monthly"):
        return f"{kind[0]}{window_id[:4]}"
    return window_id


async def lock_users(session: AsyncSession, user_ids: Iterable[str], *, shared: bool) -> None:
    """Before any window lock (every writer takes users, then windows)."""
    stripes = {str(int(user_id.replace("-", ""), 16) % USER_STRIPES) for user_id in user_ids}
    await lock_keys(session, _USER_LOCKS, stripes, shared=shared)


async def ranked(session: AsyncSession, user_ids: Iterable[str]) -> set[str]:
    """Those of `user_ids` ranked on the global boards (an unknown user is not)."""
    rows = await session.scalars(
        select(users.c.user_id).where(users.c.user_id == any_(list(set(user_ids))), _RANKED)
    )
    return {str(r) for r in rows}


_APPLY = text(
    """
    WITH new AS (
        INSERT INTO score_changes (change_id, user_id, occurred_at)
        SELECT change_id, CAST(user_id AS uuid), occurred_at
        FROM unnest(string_to_array(:change_ids, ','), string_to_array(:user_ids, ','),
                    CAST(string_to_array(:occurred, ',') AS timestamptz[]))
             AS c (change_id, user_id, occurred_at)
        ON CONFLICT DO NOTHING
        RETURNING change_id, user_id, occurred_at
    ), deltas AS (
        SELECT * FROM unnest(
            string_to_array(:delta_changes, ','), string_to_array(:window_ids, ','),
            CAST(string_to_array(:seconds, ',') AS bigint[]),
            CAST(string_to_array(:nights, ',') AS integer[]))
            AS d (change_id, window_id, seconds, nights)
    ), summed AS (
        SELECT d.window_id, new.user_id, sum(d.seconds) AS seconds, sum(d.nights) AS nights,
               max(new.occurred_at) AS reached_at
        FROM deltas d JOIN new USING (change_id)
        GROUP BY d.window_id, new.user_id
    )
    INSERT INTO scores AS s (window_id, user_id, seconds, nights, reached_at)
    SELECT window_id, user_id, seconds, nights, reached_at FROM summed
    ON CONFLICT (window_id, user_id) DO UPDATE SET
        seconds = s.seconds + excluded.seconds,
        nights = s.nights + excluded.nights,
        reached_at = greatest(s.reached_at, excluded.reached_at)
    RETURNING window_id, CAST(user_id AS text), seconds, nights, reached_at
    """
)


async def apply(session: AsyncSession, changes: list[Change]) -> list[Score]:
    """Record the changes not seen before and add their deltas to the scores; the scores changed.

    The ledger has one row per change; its deltas (one per window) only travel
    with the statement. Each column is one comma-joined string (no value holds
    a comma): quoting thousands of array elements one by one cost more than
    the statement itself.
    """
    changes = _once_each(changes)
    if not changes:
        return []
    ledger = {c.change_id: c for c in changes}.values()  # one row a change, not a window
    rows = await session.execute(
        _APPLY,
        {
            "change_ids": ",".join(c.change_id for c in ledger),
            "user_ids": ",".join(c.user_id for c in ledger),
            "occurred": ",".join(c.occurred_at.isoformat() for c in ledger),
            "delta_changes": ",".join(c.change_id for c in changes),
            "window_ids": ",".join(c.window_id for c in changes),
            "seconds": ",".join(str(c.seconds) for c in changes),
            "nights": ",".join(str(c.nights) for c in changes),
        },
    )
    return [Score(*row) for row in rows]


def _once_each(changes: list[Change]) -> list[Change]:
    """The first of each (change, window): an event delivered twice in one batch adds once.

    The ledger's ON CONFLICT only skips changes recorded by an earlier batch;
    within one statement both copies would find the ledger without them.
    """
    seen: set[tuple[str, str]] = set()
    once = []
    for change in changes:
        if (change.change_id, change.window_id) not in seen:
            seen.add((change.change_id, change.window_id))
            once.append(change)
    return once


async def window_scores(session: AsyncSession, window_id: str) -> list[Score]:
    """The scores of the users ranked on the global boards."""
    rows = await session.execute(
        text(
            "SELECT s.user_id, s.seconds, s.nights, s.reached_at FROM scores s "
            "JOIN users u USING (user_id) "
            "WHERE s.window_id = :w AND s.nights > 0 "
            "AND (u.nights_visible_to = :everyone OR u.show_on_global_boards)"
        ),
        {"w": window_id, "everyone": visibility.EVERYONE},
    )
    return [Score(window_id, str(u), s, n, t) for u, s, n, t in rows]


async def scores_of(session: AsyncSession, window_id: str, user_ids: list[str]) -> list[Score]:
    """The scores of `user_ids` in the window, ranked globally or not."""
    rows = await session.execute(
        text(
            "SELECT user_id, seconds, nights, reached_at FROM scores "
            "WHERE window_id = :w AND user_id = ANY(CAST(:ids AS uuid[])) AND nights > 0"
        ),
        {"w": window_id, "ids": user_ids},
    )
    return [Score(window_id, str(u), s, n, t) for u, s, n, t in rows]


async def scores_of_user(session: AsyncSession, user_id: str) -> list[Score]:
    """Every window's score of one user."""
    rows = await session.execute(
        text("SELECT window_id, seconds, nights, reached_at FROM scores WHERE user_id = :u"),
        {"u": user_id},
    )
    return [Score(w, user_id, s, n, t) for w, s, n, t in rows]


async def user_score(session: AsyncSession, window_id: str, user_id: str) -> Score | None:
    row = (
        await session.execute(
            text(
                "SELECT seconds, nights, reached_at FROM scores "
                "WHERE window_id = :w AND user_id = :u"
            ),
            {"w": window_id, "u": user_id},
        )
    ).first()
    return Score(window_id, user_id, *row) if row else None


async def save_user(session: AsyncSession, row: UserRow) -> None:
    values = row.__dict__
    await session.execute(
        pg_insert(users)
        .values(**values)
        .on_conflict_do_update(index_elements=[users.c.user_id], set_=values)
    )


async def find_users(session: AsyncSession, ids: Iterable[str]) -> dict[str, UserRow]:
    rows = await session.execute(select(users).where(users.c.user_id.in_(list(set(ids)))))
    return {r.user_id: UserRow(**r._mapping) for r in rows}


async def add_follow(session: AsyncSession, follower_id: str, followee_id: str) -> None:
    await insert_if_absent(session, follows, follower_id=follower_id, followee_id=followee_id)


async def remove_follow(session: AsyncSession, follower_id: str, followee_id: str) -> None:
    await delete_if_present(session, follows, follower_id=follower_id, followee_id=followee_id)


async def visible_followees(session: AsyncSession, follower_id: str) -> list[str]:
    """Whom `follower_id` follows and may see (visibility.may_see, for a follower), or who
    stand on the global boards anyway; a followee the copy does not know yet is left out."""
    rows = await session.scalars(
        select(follows.c.followee_id)
        .join(users, users.c.user_id == follows.c.followee_id)
        .where(
            follows.c.follower_id == follower_id,
            or_(users.c.nights_visible_to != visibility.ONLY_ME, _RANKED),
        )
    )
    return [str(r) for r in rows]


async def forget_user(session: AsyncSession, user_id: str) -> None:
    """Every row of a user: scores, streaks, the ledger of their changes, the copies."""
    for statement in (
        "DELETE FROM scores WHERE user_id = :u",
        "DELETE FROM streaks WHERE user_id = :u",
        "DELETE FROM streak_runs WHERE user_id = :u",
        "DELETE FROM score_changes WHERE user_id = :u",
        "DELETE FROM follows WHERE follower_id = :u OR followee_id = :u",
        "DELETE FROM users WHERE user_id = :u",
    ):
        await session.execute(text(statement), {"u": user_id})


# -- streaks (services.leaderboard.streaks) -------------------------------------------------


class Streak(NamedTuple):
    window_id: str
    user_id: str
    value: int
    reached_at: datetime


async def goals(session: AsyncSession, user_ids: Iterable[str]) -> dict[str, int]:
    """Each user's nightly goal in seconds (the default for a user not known yet)."""
    wanted = sorted(set(user_ids))
    rows = await session.execute(
        select(users.c.user_id, users.c.goal_seconds).where(users.c.user_id == any_(wanted))
    )
    found = {str(user): goal for user, goal in rows}
    return {user: found.get(user, DEFAULT_GOAL_SECONDS) for user in wanted}


async def runs_near(
    session: AsyncSession, spans: dict[str, tuple[date, date]]
) -> dict[str, list[tuple[date, date]]]:
    """Each user's runs that hold, or touch, a date of their span (first, last)."""
    if not spans:
        return {}
    ordered = sorted(spans.items())
    users_ = [user for user, _span in ordered]
    firsts = [first for _user, (first, _last) in ordered]
    lasts = [last for _user, (_first, last) in ordered]
    rows = await session.execute(
        text(
            "SELECT CAST(r.user_id AS text), r.first_date, r.last_date FROM streak_runs r "
            "JOIN unnest(CAST(:users AS uuid[]), CAST(:firsts AS date[]), CAST(:lasts AS date[]))"
            " AS s(user_id, first, last) ON r.user_id = s.user_id "
            "AND r.last_date >= s.first - 1 AND r.first_date <= s.last + 1"
        ),
        {"users": users_, "firsts": firsts, "lasts": lasts},
    )
    found: dict[str, list[tuple[date, date]]] = {user: [] for user in spans}
    for user, first, last in rows:
        found[user].append((first, last))
    return found


async def replace_runs(
    session: AsyncSession,
    gone: Iterable[tuple[str, date]],
    new: Iterable[tuple[str, date, date]],
) -> None:
    """Delete the runs (user, first date) `gone`, then insert the runs `new`."""
    gone, new = sorted(set(gone)), sorted(set(new))
    if gone:
        await session.execute(
            text(
                "DELETE FROM streak_runs r USING unnest(CAST(:users AS uuid[]), "
                "CAST(:firsts AS date[])) AS g(user_id, first) "
                "WHERE r.user_id = g.user_id AND r.first_date = g.first"
            ),
            {"users": [u for u, _f in gone], "firsts": [f for _u, f in gone]},
        )
    if new:
        await session.execute(
            text(
                "INSERT INTO streak_runs (user_id, first_date, last_date) SELECT * FROM unnest("
                "CAST(:users AS uuid[]), CAST(:firsts AS date[]), CAST(:lasts AS date[]))"
            ),
            {
                "users": [u for u, _f, _l in new],
                "firsts": [f for _u, f, _l in new],
                "lasts": [last for _u, _f, last in new],
            },
        )


_SET_STREAKS = text(
    """
    INSERT INTO streaks AS s (window_id, user_id, value, reached_at)
    SELECT w, u, v, t FROM unnest(CAST(:windows AS text[]), CAST(:users AS uuid[]),
                                  CAST(:values AS integer[]), CAST(:ats AS timestamptz[]))
        AS x(w, u, v, t)
    -- a streak of 0 is kept only where one was before (it is on no board)
    WHERE v > 0 OR EXISTS (SELECT 1 FROM streaks o WHERE o.window_id = w AND o.user_id = u)
    ON CONFLICT (window_id, user_id) DO UPDATE SET
        value = excluded.value, reached_at = excluded.reached_at
    WHERE s.value <> excluded.value  -- unchanged: when it was reached stays
    """
)


async def set_streaks(session: AsyncSession, streaks: Iterable[Streak]) -> None:
    """Each window's streak of each user, reached then (whole seconds, as boards compare
    them) if it changed."""
    rows = sorted(streaks)
    if not rows:
        return
    await session.execute(
        _SET_STREAKS,
        {
            "windows": [s.window_id for s in rows],
            "users": [s.user_id for s in rows],
            "values": [s.value for s in rows],
            "ats": [s.reached_at.replace(microsecond=0) for s in rows],
        },
    )


async def longest_runs(session: AsyncSession, user_ids: Iterable[str]) -> dict[str, int]:
    """Each user's longest run, in days (0 without one): their all-time streak."""
    wanted = sorted(set(user_ids))
    rows = await session.execute(
        text(
            "SELECT CAST(user_id AS text), max(last_date - first_date + 1) FROM streak_runs "
            "WHERE user_id = ANY(CAST(:u AS uuid[])) GROUP BY user_id"
        ),
        {"u": wanted},
    )
    found = dict(rows.all())
    return {user: found.get(user, 0) for user in wanted}


async def days_at_goal(session: AsyncSession, user_id: str, goal_seconds: int) -> list[date]:
    """The dates whose nights met `goal_seconds` (from the daily windows' sums)."""
    rows = await session.execute(
        text(
            "SELECT window_id FROM scores WHERE user_id = :u AND window_id ~ :daily "
            "AND nights > 0 AND seconds >= :goal"
        ),
        {"u": user_id, "daily": r"^\d{4}-\d{2}-\d{2}$", "goal": goal_seconds},
    )
    return [date.fromisoformat(w) for (w,) in rows]


async def windows_of_user(session: AsyncSession, user_id: str) -> list[str]:
    """Every window the user has sums in (all-time among them, once they have any)."""
    rows = await session.execute(
        text("SELECT window_id FROM scores WHERE user_id = :u"), {"u": user_id}
    )
    return [w for (w,) in rows]


async def forget_runs(session: AsyncSession, user_id: str) -> None:
    await session.execute(text("DELETE FROM streak_runs WHERE user_id = :u"), {"u": user_id})


#: A window's streak board: the streaks of those ranked on the global boards.
_STREAK_BOARD = (
    "FROM streaks s JOIN users u USING (user_id) WHERE s.window_id = :w AND s.value > 0 "
    "AND (u.nights_visible_to = :everyone OR u.show_on_global_boards) "
)
#: Above the streak (:v, :t, :u) in the boards' order: longer, or reached sooner, or by a
#: higher user id; BELOW is the rest.
_ABOVE = (
    "AND (s.value > :v OR (s.value = :v AND s.reached_at < :t) "
    "OR (s.value = :v AND s.reached_at = :t AND s.user_id > CAST(:u AS uuid))) "
)
_BELOW = (
    "AND (s.value < :v OR (s.value = :v AND s.reached_at > :t) "
    "OR (s.value = :v AND s.reached_at = :t AND s.user_id < CAST(:u AS uuid))) "
)
_STREAK_COLUMNS = "SELECT CAST(s.user_id AS text), s.value, s.reached_at "


def _at(window_id: str, value: int, reached_at: datetime, user_id: str, **more) -> dict:
    return {
        "w": window_id,
        "everyone": visibility.EVERYONE,
        "v": value,
        "t": reached_at,
        "u": user_id,
        **more,
    }


async def streak_page(
    session: AsyncSession, window_id: str, after: tuple[int, datetime, str] | None, limit: int
) -> list[Streak]:
    """The window's streak board, longest first (the first to reach it first, then by user
    id descending, as the boards order), after `after` (value, reached at, user)."""
    query = _STREAK_COLUMNS + _STREAK_BOARD
    params = {"w": window_id, "everyone": visibility.EVERYONE, "n": limit}
    if after is not None:
        query += _BELOW
        params = _at(window_id, *after, n=limit)
    query += "ORDER BY s.value DESC, s.reached_at, s.user_id DESC LIMIT :n"
    rows = await session.execute(text(query), params)
    return [Streak(window_id, u, v, t) for u, v, t in rows]


async def streaks_above(session: AsyncSession, mine: Streak) -> int:
    """How many stand above `mine` on its window's streak board."""
    rows = await session.execute(
        text("SELECT count(*) " + _STREAK_BOARD + _ABOVE),
        _at(mine.window_id, mine.value, mine.reached_at, mine.user_id),
    )
    return rows.scalar_one()


async def streaks_just_above(session: AsyncSession, mine: Streak, count: int) -> list[Streak]:
    """The `count` streaks just above `mine` on its window's streak board, best first."""
    rows = await session.execute(
        text(
            _STREAK_COLUMNS
            + _STREAK_BOARD
            + _ABOVE
            + "ORDER BY s.value, s.reached_at DESC, s.user_id LIMIT :n"
        ),
        _at(mine.window_id, mine.value, mine.reached_at, mine.user_id, n=count),
    )
    return [Streak(mine.window_id, u, v, t) for u, v, t in reversed(rows.all())]


async def streaks_of(session: AsyncSession, window_id: str, user_ids: list[str]) -> list[Streak]:
    """The window's streaks (above 0) of these users, ranked globally or not."""
    rows = await session.execute(
        text(
            "SELECT CAST(user_id AS text), value, reached_at FROM streaks "
            "WHERE window_id = :w AND user_id = ANY(CAST(:ids AS uuid[])) AND value > 0"
        ),
        {"w": window_id, "ids": user_ids},
    )
    return [Streak(window_id, u, v, t) for u, v, t in rows]
