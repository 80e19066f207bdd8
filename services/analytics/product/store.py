"""Product analytics in PostgreSQL: raw events, rollups, sessions, visitor sketches, salts.

`raw_events` is keyed by the client's event id, so inserting a batch with ON
CONFLICT DO NOTHING ... RETURNING says which events are new: only those move
the rollups, in the same transaction. `counts` holds events per name per
15-minute bucket (every real time zone's hours and days are whole 15-minute
buckets), in total (dimension "") and split by page, referrer and each
property; `minute_counts` per minute, kept only as long as raw events.
Sessions and the visitors' HyperLogLog sketches stay too; raw events and
minute counts are swept after the retention period. The reports read
the rollups through the queries here (`events_per_minute` and those after it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    delete,
    func,
    literal,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.product.sessions import GAP, Session
from services.kit.db import lock_keys

metadata = MetaData()
_ts = DateTime(timezone=True)
_VISITOR_LOCKS = 5

raw_events = Table(
    "raw_events",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("event_time", _ts, nullable=False),
    Column("receive_time", _ts, nullable=False),
    Column("visitor_id", Text, nullable=False),
    Column("user_id", Text),
    Column("client_session_id", Text, nullable=False),
    Column("page", Text, nullable=False),
    Column("referrer", Text, nullable=False),
    Column("properties", JSONB, nullable=False),
)
counts = Table(
    "counts",
    metadata,
    Column("name", Text, primary_key=True),
    Column("dimension", Text, primary_key=True),
    Column("value", Text, primary_key=True),
    Column("bucket", _ts, primary_key=True),
    Column("events", BigInteger, nullable=False),
)
minute_counts = Table(
    "minute_counts",
    metadata,
    Column("name", Text, primary_key=True),
    Column("minute", _ts, primary_key=True),
    Column("events", BigInteger, nullable=False),
)
sessions = Table(
    "sessions",
    metadata,
    Column("session_id", Text, primary_key=True),
    Column("visitor_id", Text, nullable=False),
    Column("started_at", _ts, nullable=False),
    Column("ended_at", _ts, nullable=False),
    Column("events", Integer, nullable=False),
    Column("page_views", Integer, nullable=False),
)
visitor_sketches = Table(
    "visitor_sketches",
    metadata,
    Column("bucket", _ts, primary_key=True),
    Column("sketch", LargeBinary, nullable=False),
)
salts = Table(
    "salts",
    metadata,
    Column("day", Date, primary_key=True),
    Column("salt", LargeBinary, nullable=False),
)
#: The event names, property keys and values each day counts (cardinality.py).
admitted = Table(
    "admitted",
    metadata,
    Column("day", Date, primary_key=True),
    Column("scope", Text, primary_key=True),
    Column("item", Text, primary_key=True),
)


# One fixed statement whatever the batch size, its rows as one JSON array: PostgreSQL
# parses and plans it once per connection, and the client encodes a batch in one call
# (arrays would be dumped element by element, in Python).
_INSERT_RAW = text(
    """
    INSERT INTO raw_events (event_id, name, event_time, receive_time, visitor_id, user_id,
                            client_session_id, page, referrer, properties)
    SELECT event_id, name, event_time, receive_time, visitor_id, user_id,
           client_session_id, page, referrer, properties
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
        event_id text, name text, event_time timestamptz, receive_time timestamptz,
        visitor_id text, user_id text, client_session_id text, page text, referrer text,
        properties jsonb)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
    """
)
_ADD_COUNTS = text(
    """
    INSERT INTO counts (name, dimension, value, bucket, events)
    SELECT * FROM unnest(CAST(:name AS text[]), CAST(:dimension AS text[]),
                         CAST(:value AS text[]), CAST(:bucket AS timestamptz[]),
                         CAST(:events AS bigint[]))
    ON CONFLICT (name, dimension, value, bucket)
    DO UPDATE SET events = counts.events + EXCLUDED.events
    """
)
_ADD_MINUTE_COUNTS = text(
    """
    INSERT INTO minute_counts (name, minute, events)
    SELECT * FROM unnest(CAST(:name AS text[]), CAST(:minute AS timestamptz[]),
                         CAST(:events AS bigint[]))
    ON CONFLICT (name, minute) DO UPDATE SET events = minute_counts.events + EXCLUDED.events
    """
)


async def insert_new(session: AsyncSession, rows: list[dict]) -> set[str]:
    """Insert raw events (dicts of raw_events' columns); the ids of those not seen before."""
    if not rows:
        return set()
    encoded = json.dumps(rows, default=datetime.isoformat)
    return set((await session.execute(_INSERT_RAW, {"rows": encoded})).scalars())


async def add_counts(session: AsyncSession, totals: dict[tuple, int]) -> None:
    """Add to (name, dimension, value, bucket) counts; in key order, so batches never deadlock."""
    await _add(session, _ADD_COUNTS, ("name", "dimension", "value", "bucket"), totals)


async def add_minute_counts(session: AsyncSession, totals: dict[tuple, int]) -> None:
    await _add(session, _ADD_MINUTE_COUNTS, ("name", "minute"), totals)


async def _add(session, statement, key: tuple[str, ...], totals: dict[tuple, int]) -> None:
    if not totals:
        return
    ordered = sorted(totals.items())
    params = {name: [k[i] for k, _n in ordered] for i, name in enumerate(key)}
    params["events"] = [n for _k, n in ordered]
    await session.execute(statement, params)


_NEAR = text(
    """
    SELECT s.session_id, s.visitor_id, s.started_at, s.ended_at, s.events, s.page_views
    FROM sessions s
    JOIN unnest(CAST(:visitors AS text[]), CAST(:firsts AS timestamptz[]),
                CAST(:lasts AS timestamptz[])) AS v(visitor_id, first, last)
      ON s.visitor_id = v.visitor_id AND s.ended_at >= v.first AND s.started_at <= v.last
    ORDER BY s.started_at
    """
)


async def visitor_sessions(
    session: AsyncSession, spans: dict[str, tuple[datetime, datetime]]
) -> dict[str, list[Session]]:
    """Each visitor's sessions near [first, last] of their events, locked for this batch."""
    await lock_keys(session, _VISITOR_LOCKS, spans)
    found: dict[str, list[Session]] = {visitor: [] for visitor in spans}
    if not spans:
        return found
    visitors = sorted(spans)
    rows = await session.execute(
        _NEAR,
        {
            "visitors": visitors,
            "firsts": [spans[v][0] - GAP for v in visitors],
            "lasts": [spans[v][1] + GAP for v in visitors],
        },
    )
    for row in rows:
        found[row.visitor_id].append(Session(**row._mapping))
    return found


async def save_sessions(session: AsyncSession, changed: Sequence[Session]) -> None:
    if not changed:
        return
    rows = [
        {
            "session_id": s.session_id,
            "visitor_id": s.visitor_id,
            "started_at": s.started_at,
            "ended_at": s.ended_at,
            "events": s.events,
            "page_views": s.page_views,
        }
        for s in sorted(changed, key=lambda s: s.session_id)
    ]
    stmt = pg_insert(sessions)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["session_id"],
            set_={c: stmt.excluded[c] for c in ("started_at", "ended_at", "events", "page_views")},
        ),
        rows,
    )


async def lock_sketches(
    session: AsyncSession, buckets: Iterable[datetime]
) -> dict[datetime, bytes]:
    """The sketches of these buckets (empty for new ones), row-locked until commit."""
    wanted = sorted(set(buckets))
    if not wanted:
        return {}
    await session.execute(
        pg_insert(visitor_sketches)
        .values([{"bucket": b, "sketch": b""} for b in wanted])
        .on_conflict_do_nothing(index_elements=["bucket"])
    )
    rows = await session.execute(
        select(visitor_sketches.c.bucket, visitor_sketches.c.sketch)
        .where(visitor_sketches.c.bucket.in_(wanted))
        .order_by(visitor_sketches.c.bucket)
        .with_for_update()
    )
    return {row.bucket: row.sketch for row in rows}


async def save_sketches(session: AsyncSession, sketches: dict[datetime, bytes]) -> None:
    for bucket, sketch in sorted(sketches.items()):
        await session.execute(
            visitor_sketches.update()
            .where(visitor_sketches.c.bucket == bucket)
            .values(sketch=sketch)
        )


async def sketch_buckets(session: AsyncSession, start: datetime, end: datetime) -> list[datetime]:
    """Buckets in [start, end) that saw any visitor, in order."""
    rows = await session.execute(
        select(visitor_sketches.c.bucket)
        .where(
            visitor_sketches.c.bucket >= start,
            visitor_sketches.c.bucket < end,
            func.length(visitor_sketches.c.sketch) > 0,
        )
        .order_by(visitor_sketches.c.bucket)
    )
    return list(rows.scalars())


async def sketches(session: AsyncSession, buckets: Sequence[datetime]) -> dict[datetime, bytes]:
    if not buckets:
        return {}
    rows = await session.execute(
        select(visitor_sketches.c.bucket, visitor_sketches.c.sketch).where(
            visitor_sketches.c.bucket.in_(list(buckets))
        )
    )
    return {row.bucket: row.sketch for row in rows}


async def events_per_minute(
    session: AsyncSession, name: str, start: datetime, end: datetime
) -> dict[datetime, int]:
    """Events named `name` per UTC minute in [start, end); minutes without any are absent."""
    rows = await session.execute(
        select(minute_counts.c.minute, minute_counts.c.events).where(
            minute_counts.c.name == name,
            minute_counts.c.minute >= start,
            minute_counts.c.minute < end,
        )
    )
    return {minute: int(n) for minute, n in rows}


async def events_per_bucket(
    session: AsyncSession, name: str, start: datetime, end: datetime
) -> dict[datetime, int]:
    """Events named `name` per 15-minute bucket in [start, end); buckets without any are absent."""
    rows = await session.execute(
        select(counts.c.bucket, counts.c.events).where(
            counts.c.name == name,
            counts.c.dimension == "",
            counts.c.value == "",
            counts.c.bucket >= start,
            counts.c.bucket < end,
        )
    )
    return {bucket: int(n) for bucket, n in rows}


async def all_events_per_bucket(
    session: AsyncSession, start: datetime, end: datetime
) -> dict[datetime, int]:
    """Events of every name per 15-minute bucket in [start, end); buckets without any are absent."""
    rows = await session.execute(
        select(counts.c.bucket, func.sum(counts.c.events))
        .where(counts.c.dimension == "", counts.c.bucket >= start, counts.c.bucket < end)
        .group_by(counts.c.bucket)
    )
    return {bucket: int(n) for bucket, n in rows}


async def breakdown(
    session: AsyncSession, name: str, dimension: str, start: datetime, end: datetime
) -> tuple[int, dict[str, int]]:
    """Events named `name` in [start, end): all of them, and how many had each value of
    `dimension` (those without one count in the total only)."""
    in_range = (counts.c.name == name, counts.c.bucket >= start, counts.c.bucket < end)
    total = (
        await session.execute(
            select(func.coalesce(func.sum(counts.c.events), 0)).where(
                *in_range, counts.c.dimension == ""
            )
        )
    ).scalar_one()
    rows = await session.execute(
        select(counts.c.value, func.sum(counts.c.events))
        .where(*in_range, counts.c.dimension == dimension)
        .group_by(counts.c.value)
    )
    return int(total), {value: int(n) for value, n in rows}


@dataclass(frozen=True)
class Visits:
    """The sessions that started in one 15-minute bucket."""

    sessions: int
    #: Those with at most one page view.
    bounces: int
    #: Their lengths, added up.
    seconds: float


_VISITS = text(
    """
    SELECT date_bin('15 minutes', started_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
           count(*) AS sessions,
           count(*) FILTER (WHERE page_views <= 1) AS bounces,
           sum(extract(epoch FROM ended_at - started_at)) AS seconds
    FROM sessions WHERE started_at >= :start AND started_at < :end
    GROUP BY 1
    """
)


async def visits_per_bucket(
    session: AsyncSession, start: datetime, end: datetime
) -> dict[datetime, Visits]:
    """Sessions started in [start, end) per 15-minute bucket; buckets without any are absent."""
    rows = await session.execute(_VISITS, {"start": start, "end": end})
    return {row.bucket: Visits(row.sessions, row.bounces, float(row.seconds)) for row in rows}


async def salt_of(session: AsyncSession, day: date) -> bytes:
    """The day's secret salt, made by whichever instance asks first."""
    await session.execute(
        pg_insert(salts)
        .values(day=day, salt=os.urandom(32))
        .on_conflict_do_nothing(index_elements=["day"])
    )
    return (await session.execute(select(salts.c.salt).where(salts.c.day == day))).scalar_one()


SWEEP_CHUNK = 10_000


async def sweep_chunk(
    session: AsyncSession, raw_before: datetime, salts_before: date, rollups_before: datetime
) -> int:
    """Delete up to SWEEP_CHUNK expired rows of each kind; how many went (0: all done).

    Raw events and minute counts older than the raw retention go, salts
    before `salts_before` (so no hash can be made again for those days), and
    rollups, sessions, sketches and admitted labels before `rollups_before`.
    """
    gone = 0
    for table, column, limit in (
        (raw_events, raw_events.c.receive_time, raw_before),
        (minute_counts, minute_counts.c.minute, raw_before),
        (salts, salts.c.day, salts_before),
        (counts, counts.c.bucket, rollups_before),
        (sessions, sessions.c.ended_at, rollups_before),
        (visitor_sketches, visitor_sketches.c.bucket, rollups_before),
        (admitted, admitted.c.day, rollups_before.date()),
    ):
        expired = select(*table.primary_key.columns).where(column < limit).limit(SWEEP_CHUNK)
        keys = list(table.primary_key.columns)
        match = keys[0].in_(expired) if len(keys) == 1 else tuple_(*keys).in_(expired)
        result = await session.execute(delete(table).where(match).returning(literal(1)))
        gone += len(result.all())
    return gone


async def forget_user(session: AsyncSession, user_id: str) -> None:
    """A deleted account's raw events and sessions. The counts and rollups hold no one
    (they stay); a visitor sketch cannot take one visitor out, and its days expire
    (ZENTRY_ANALYTICS_ROLLUP_RETENTION_DAYS)."""
    await session.execute(delete(raw_events).where(raw_events.c.user_id == user_id))
    await session.execute(delete(sessions).where(sessions.c.visitor_id == f"u:{user_id}"))
