"""How many distinct labels the rollups count a day: event names, property keys, values.

Client events are free text within their patterns, so without a bound random
names, keys or values would each add rollup rows for ever. Each UTC day
admits at most `names` event names, `keys` property keys per name and
`values` values per name and dimension (page, referrer, each property): the
first to arrive are counted as they are, the rest as OTHER, as the web
analytics products we learn from do. Raw events keep what was sent.

Admission runs in the rollup batch's transaction: a label admitted before
costs one lookup; a new one takes its scope's advisory lock (names first,
then keys, then values, each stage in sorted order, so batches never deadlock),
then is admitted while its scope has room. A batch takes a few statements a
stage whatever it holds, and at most STRIPES locks a stage.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from zentry.events.v1 import analytics_events_pb2 as aev

from services.kit.db import lock_keys

OTHER = "(other)"
#: Advisory lock spaces, one a stage, taken in this order; a scope's lock is one of STRIPES.
#: (the store's visitor locks are space 5.)
_NAME_LOCKS, _KEY_LOCKS, _VALUE_LOCKS = 6, 7, 8
STRIPES = 64


@dataclass(frozen=True)
class Caps:
    names: int = 500
    keys: int = 50
    values: int = 1000


Label = tuple[str, str]  # (dimension, value); ("", "") is the event's total


async def labels(
    session: AsyncSession, events: list[aev.ClientEventAccepted], caps: Caps
) -> dict[str, tuple[str, list[Label]]]:
    """Each event's name and dimensions as the rollups count them, by event id."""
    days = {e.event_id: e.event_time.ToDatetime(tzinfo=UTC).date() for e in events}
    wanted = {(days[e.event_id], "name", e.name) for e in events}
    names = await _admit(session, wanted, caps.names, _NAME_LOCKS)
    name_of = {e.event_id: _as(names, days[e.event_id], "name", e.name) for e in events}

    wanted = {
        (days[e.event_id], f"key:{name_of[e.event_id]}", k) for e in events for k in e.properties
    }
    keys = await _admit(session, wanted, caps.keys, _KEY_LOCKS)
    raw: dict[str, list[Label]] = {}
    for e in events:
        day, name = days[e.event_id], name_of[e.event_id]
        found = [("page", e.page)] if e.page else []
        found += [("referrer", e.referrer)] if e.referrer else []
        found += [
            (f"property.{_as(keys, day, f'key:{name}', k)}", v) for k, v in e.properties.items()
        ]
        raw[e.event_id] = found

    wanted = {
        (days[i], f"value:{name_of[i]}:{dimension}", value)
        for i, found in raw.items()
        for dimension, value in found
    }
    values = await _admit(session, wanted, caps.values, _VALUE_LOCKS)
    return {  # an event counts once under a label, however many of its keys or values fold
        i: (
            name_of[i],
            list(
                dict.fromkeys(
                    [("", "")]
                    + [(d, _as(values, days[i], f"value:{name_of[i]}:{d}", v)) for d, v in found]
                )
            ),
        )
        for i, found in raw.items()
    }


def _as(allowed: set, day: date, scope: str, item: str) -> str:
    return item if (day, scope, item) in allowed else OTHER


async def _admit(session: AsyncSession, wanted: set, cap: int, space: int) -> set:
    """Which of `wanted` (day, scope, item) are admitted, admitting new ones while there is room."""
    if not wanted:
        return set()
    found = await _present(session, wanted)
    if found == wanted:
        return found
    groups = {(day, scope) for day, scope, _item in wanted - found}
    await lock_keys(
        session, space, {str(zlib.crc32(f"{d}/{s}".encode()) % STRIPES) for d, s in groups}
    )
    found = await _present(session, wanted)  # again, now that no one else admits here
    rows = await session.execute(_COUNTS, _columns(groups, ("days", "scopes")))
    room = {(day, scope): cap - count for day, scope, count in rows}
    new = []
    for day, scope, item in sorted(wanted - found):
        if room.get((day, scope), cap) > 0:
            room[(day, scope)] = room.get((day, scope), cap) - 1
            new.append((day, scope, item))
    if new:
        await session.execute(_INSERT, _columns(new, ("days", "scopes", "items")))
    return found | set(new)


async def _present(session: AsyncSession, wanted: set) -> set:
    rows = await session.execute(_PRESENT, _columns(wanted, ("days", "scopes", "items")))
    return {tuple(row) for row in rows}


def _columns(rows, names: tuple[str, ...]) -> dict[str, list]:
    ordered = sorted(rows)
    return {name: [row[i] for row in ordered] for i, name in enumerate(names)}


_WANTED = "unnest(CAST(:days AS date[]), CAST(:scopes AS text[]), CAST(:items AS text[]))"
_PRESENT = text(
    f"""
    SELECT a.day, a.scope, a.item FROM admitted a
    JOIN {_WANTED} AS w(day, scope, item)
      ON a.day = w.day AND a.scope = w.scope AND a.item = w.item
    """
)
_COUNTS = text(
    """
    SELECT a.day, a.scope, count(*) FROM admitted a
    JOIN unnest(CAST(:days AS date[]), CAST(:scopes AS text[])) AS g(day, scope)
      ON a.day = g.day AND a.scope = g.scope
    GROUP BY a.day, a.scope
    """
)
_INSERT = text(
    f"INSERT INTO admitted (day, scope, item) SELECT * FROM {_WANTED} ON CONFLICT DO NOTHING"
)
