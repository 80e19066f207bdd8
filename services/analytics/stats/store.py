"""Sleep statistics in PostgreSQL: each entry's latest state, and the nights made of them.

`entries` keeps every entry at its highest revision seen (a delete is a
tombstone at its revision, so a late or replayed create cannot bring an
entry back). `nights` holds one row per user and sleep date, recomputed from
that date's live entries whenever one of them changes, in the same
transaction: the statistics read nights only, and nights always equal a
recomputation from the entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    delete,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.stats.domain import Night

metadata = MetaData()

sleepers = Table(
    "sleepers",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("time_zone", Text, nullable=False),
    Column("goal_seconds", Integer, nullable=False),
)
entries = Table(
    "entries",
    metadata,
    Column("entry_id", Text, primary_key=True),
    Column("user_id", Text, nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("sleep_date", Date, nullable=False),
    Column("start_time", DateTime(timezone=True), nullable=False),
    Column("seconds", Integer, nullable=False),
    Column("bedtime", SmallInteger, nullable=False),
    Column("wake_time", SmallInteger, nullable=False),
    Column("quality", SmallInteger, nullable=False),
)
nights = Table(
    "nights",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("sleep_date", Date, primary_key=True),
    Column("seconds", Integer, nullable=False),
    Column("entries", Integer, nullable=False),
    Column("bedtime", SmallInteger, nullable=False),
    Column("wake_time", SmallInteger, nullable=False),
    Column("quality", Float),
    Column("last_end", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class EntryRow:
    entry_id: str
    user_id: str
    revision: int
    deleted: bool
    sleep_date: date
    start_time: datetime
    seconds: int
    bedtime: int
    wake_time: int
    quality: int


@dataclass(frozen=True)
class Sleeper:
    time_zone: str
    goal_seconds: int


async def save_sleeper(session: AsyncSession, user_id: str, sleeper: Sleeper) -> None:
    stmt = pg_insert(sleepers).values(
        user_id=user_id, time_zone=sleeper.time_zone, goal_seconds=sleeper.goal_seconds
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["user_id"],
            set_={"time_zone": stmt.excluded.time_zone, "goal_seconds": stmt.excluded.goal_seconds},
        )
    )


async def sleeper(session: AsyncSession, user_id: str) -> Sleeper | None:
    row = (
        await session.execute(
            select(sleepers.c.time_zone, sleepers.c.goal_seconds).where(
                sleepers.c.user_id == user_id
            )
        )
    ).first()
    return Sleeper(*row) if row else None


async def current_entries(session: AsyncSession, ids: Iterable[str]) -> dict[str, EntryRow]:
    """The stored state of these entries, locked until the transaction ends."""
    rows = await session.execute(
        select(*entries.c)
        .where(entries.c.entry_id.in_(sorted(set(ids))))
        .order_by(entries.c.entry_id)
        .with_for_update()
    )
    return {row.entry_id: EntryRow(*row) for row in rows}


async def save_entries(session: AsyncSession, rows: Iterable[EntryRow]) -> None:
    values = [row.__dict__ for row in sorted(rows, key=lambda r: r.entry_id)]
    if not values:
        return
    stmt = pg_insert(entries).values(values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["entry_id"],
            set_={c.name: stmt.excluded[c.name] for c in entries.c if c.name != "entry_id"},
        )
    )


_TOUCHED = "unnest(CAST(:users AS text[]), CAST(:dates AS date[])) AS t(user_id, sleep_date)"
_FORGET = text(
    f"DELETE FROM nights n USING {_TOUCHED} "
    "WHERE n.user_id = t.user_id AND n.sleep_date = t.sleep_date"
)
# A night: its entries' total, the bedtime and wake time of its longest one, its last end.
_RECOUNT = text(
    f"""
    INSERT INTO nights
        (user_id, sleep_date, seconds, entries, bedtime, wake_time, quality, last_end)
    SELECT e.user_id, e.sleep_date, sum(e.seconds), count(*),
           (array_agg(e.bedtime ORDER BY e.seconds DESC, e.start_time))[1],
           (array_agg(e.wake_time ORDER BY e.seconds DESC, e.start_time))[1],
           avg(e.quality) FILTER (WHERE e.quality > 0),
           max(e.start_time + make_interval(secs => e.seconds))
    FROM entries e JOIN {_TOUCHED} ON e.user_id = t.user_id AND e.sleep_date = t.sleep_date
    WHERE NOT e.deleted
    GROUP BY e.user_id, e.sleep_date
    """
)


async def recompute_nights(session: AsyncSession, touched: set[tuple[str, date]]) -> None:
    """Make these (user, date) nights equal to their live entries again (none: no row)."""
    if not touched:
        return
    pairs = sorted(touched)
    params = {"users": [u for u, _d in pairs], "dates": [d for _u, d in pairs]}
    await session.execute(_FORGET, params)
    await session.execute(_RECOUNT, params)


async def nights_between(
    session: AsyncSession, user_id: str, start: date, end: date
) -> list[Night]:
    rows = await session.execute(
        select(*_NIGHT)
        .where(nights.c.user_id == user_id, nights.c.sleep_date.between(start, end))
        .order_by(nights.c.sleep_date)
    )
    return [Night(*row) for row in rows]


async def nights_before(session: AsyncSession, user_id: str, day: date, count: int) -> list[Night]:
    """The last `count` nights before `day`, oldest first."""
    rows = await session.execute(
        select(*_NIGHT)
        .where(nights.c.user_id == user_id, nights.c.sleep_date < day)
        .order_by(nights.c.sleep_date.desc())
        .limit(count)
    )
    return [Night(*row) for row in reversed(rows.all())]


_NIGHT = (
    nights.c.sleep_date,
    nights.c.seconds,
    nights.c.bedtime,
    nights.c.wake_time,
    nights.c.quality,
    nights.c.last_end,
)


async def forget_user(session: AsyncSession, user_id: str) -> None:
    """A deleted account's nights, entries and settings."""
    for table in (nights, entries, sleepers):
        await session.execute(delete(table).where(table.c.user_id == user_id))
