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

For retention cohorts (cohorts.py), `users_seen` keeps each signed-in user's
first and last event time and `active_days` each UTC day they were active
with a bit per 15-minute bucket; both only ever widen (least, greatest, bit
or), so applying an event twice or late changes nothing or exactly what it
would have in order. Funnels read raw events through the index on
(name, event_time), only the steps' names within the query's range.
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
from sqlalchemy.dialects.postgresql import BIT, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.product import cohorts
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
#: Each signed-in user's first and last event time: their cohort, and whether to keep them.
users_seen = Table(
    "users_seen",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("first_seen", _ts, nullable=False),
    Column("last_seen", _ts, nullable=False),
)
#: The UTC days each signed-in user was active: bit i of `quarters` is the bucket from
#: 00:00 + 15 i minutes (cohorts.encode).
active_days = Table(
    "active_days",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("quarters", BIT(cohorts.QUARTERS), nullable=False),
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


_WIDEN_USERS_SEEN = text(
    """
    INSERT INTO users_seen AS u (user_id, first_seen, last_seen)
    SELECT * FROM unnest(CAST(:user_id AS text[]), CAST(:first AS timestamptz[]),
                         CAST(:last AS timestamptz[]))
    ON CONFLICT (user_id) DO UPDATE
    SET first_seen = least(u.first_seen, EXCLUDED.first_seen),
        last_seen = greatest(u.last_seen, EXCLUDED.last_seen)
    WHERE EXCLUDED.first_seen < u.first_seen OR EXCLUDED.last_seen > u.last_seen
    """
)
_WIDEN_ACTIVE_DAYS = text(
    """
    INSERT INTO active_days AS a (user_id, day, quarters)
    SELECT u, d, CAST(q AS bit(96))
    FROM unnest(CAST(:user_id AS text[]), CAST(:day AS date[]), CAST(:quarters AS text[]))
        AS t(u, d, q)
    ON CONFLICT (user_id, day) DO UPDATE SET quarters = a.quarters | EXCLUDED.quarters
    WHERE a.quarters | EXCLUDED.quarters <> a.quarters
    """
)


async def add_activity(session: AsyncSession, activity: cohorts.Activity) -> None:
    """Widen users' first and last times and active buckets (idempotent; in key order, so
    batches never deadlock)."""
    if activity.spans:
        users = sorted(activity.spans)
        await session.execute(
            _WIDEN_USERS_SEEN,
            {
                "user_id": users,
                "first": [activity.spans[u][0] for u in users],
                "last": [activity.spans[u][1] for u in users],
            },
        )
    if activity.days:
        keys = sorted(activity.days)
        await session.execute(
            _WIDEN_ACTIVE_DAYS,
            {
                "user_id": [user for user, _day in keys],
                "day": [day for _user, day in keys],
                "quarters": [cohorts.encode(activity.days[k]) for k in keys],
            },
        )


_STEP_TIMES = """
    SELECT array_agg(name ORDER BY event_time) AS names,
           array_agg(CAST(extract(epoch FROM event_time) * 1000000 AS bigint)
                     ORDER BY event_time) AS times
    FROM raw_events
    WHERE name = ANY(CAST(:names AS text[])) AND event_time >= :start AND event_time < :until
          {only_users}
    GROUP BY visitor_id
    HAVING bool_or(name = :first AND event_time < :end)
    LIMIT :most
"""


async def step_times(
    session: AsyncSession,
    names: Sequence[str],
    start: datetime,
    end: datetime,
    until: datetime,
    *,
    users_only: bool,
    most: int,
) -> list[dict[str, list[int]]]:
    """For each visitor (signed-in users only, if `users_only`) with an event named `names[0]`
    in [start, end): the times (microseconds since the epoch, sorted) of their events of each
    of `names` in [start, until).

    Reads only those names' raw events in [start, until), by the (name, event_time) index;
    at most `most` visitors.
    """
    statement = text(_STEP_TIMES.format(only_users="AND user_id IS NOT NULL" if users_only else ""))
    rows = await session.execute(
        statement,
        {
            "names": sorted(set(names)),
            "first": names[0],
            "start": start,
            "end": end,
            "until": until,
            "most": most,
        },
    )
    found = []
    for event_names, times in rows:
        by_name: dict[str, list[int]] = {}
        for name, when in zip(event_names, times, strict=True):
            by_name.setdefault(name, []).append(when)
        found.append(by_name)
    return found


async def first_seen_between(
    session: AsyncSession, start: datetime, end: datetime
) -> dict[str, datetime]:
    """The users first seen in [start, end), with when."""
    rows = await session.execute(
        select(users_seen.c.user_id, users_seen.c.first_seen).where(
            users_seen.c.first_seen >= start, users_seen.c.first_seen < end
        )
    )
    return {user: when for user, when in rows}


_ACTIVITY_OF_COHORTS = text(
    """
    SELECT a.user_id, a.day, CAST(a.quarters AS text)
    FROM users_seen u JOIN active_days a ON a.user_id = u.user_id
    WHERE u.first_seen >= :start AND u.first_seen < :end
          AND a.day >= :first_day AND a.day <= :last_day
    """
)


async def activity_of_cohorts(
    session: AsyncSession, start: datetime, end: datetime, first_day: date, last_day: date
) -> list[tuple[str, date, int]]:
    """(user, UTC day, bucket mask) of the users first seen in [start, end), on the days from
    `first_day` to `last_day`."""
    rows = await session.execute(
        _ACTIVITY_OF_COHORTS,
        {"start": start, "end": end, "first_day": first_day, "last_day": last_day},
    )
    return [(user, day, cohorts.decode(quarters)) for user, day, quarters in rows]


SWEEP_CHUNK = 10_000


async def sweep_chunk(
    session: AsyncSession, raw_before: datetime, salts_before: date, rollups_before: datetime
) -> int:
    """Delete up to SWEEP_CHUNK expired rows of each kind; how many went (0: all done).

    Raw events and minute counts older than the raw retention go, salts
    before `salts_before` (so no hash can be made again for those days), and
    rollups, sessions, sketches, admitted labels and active days before
    `rollups_before`, as do users last seen before it (if they come back, they
    are first seen again).
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
        (active_days, active_days.c.day, rollups_before.date()),
        (users_seen, users_seen.c.last_seen, rollups_before),
    ):
        expired = select(*table.primary_key.columns).where(column < limit).limit(SWEEP_CHUNK)
        keys = list(table.primary_key.columns)
        match = keys[0].in_(expired) if len(keys) == 1 else tuple_(*keys).in_(expired)
        result = await session.execute(delete(table).where(match).returning(literal(1)))
        gone += len(result.all())
    return gone


async def forget_user(session: AsyncSession, user_id: str) -> None:
    """A deleted account's raw events, sessions, first-seen row and active days. The counts
    and rollups hold no one (they stay); a visitor sketch cannot take one visitor out, and
    its days expire (ZENTRY_ANALYTICS_ROLLUP_RETENTION_DAYS)."""
    await session.execute(delete(raw_events).where(raw_events.c.user_id == user_id))
    await session.execute(delete(sessions).where(sessions.c.visitor_id == f"u:{user_id}"))
    await session.execute(delete(users_seen).where(users_seen.c.user_id == user_id))
    await session.execute(delete(active_days).where(active_days.c.user_id == user_id))
