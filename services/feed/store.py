"""The feed's durable read models in PostgreSQL, and the locks that order their users.

Everything here is rebuilt from Kafka events (services.feed.projector): who
the authors are and which are celebrities, who follows whom, every entry
(with a tombstone once deleted, so a late or replayed event cannot bring it
back), and when each reader last read their feed. Redis timelines are a
cache of these tables, and a feed can always be computed from them.

Locks. A timeline is written by events' effects (fan-out, backfill, removal)
and rebuilt by readers; without an order between them, a rebuild could miss
an entry whose fan-out skipped the then-missing timeline. So every Redis
writer takes transaction-scoped advisory locks and reads what it writes
under them: an author's entry effects take the author's lock exclusively;
follow effects and rebuilds take the reader's lock exclusively, then the
authors' locks shared. Readers before authors, always, so no two
transactions wait on each other in a cycle. Entry events and celebrity
changes also take the author's lock in PostgreSQL, so an entry is saved as
fanned out or not wholly before or after a change of its author's flag.
Author locks are striped (AUTHOR_STRIPES, by a hash of the author's id): a
rebuild takes at most that many however many accounts its reader follows,
since PostgreSQL's lock table is small and shared by every database on the
server; two authors in one stripe only wait for each other a little.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    Table,
    Text,
    and_,
    any_,
    cast,
    delete,
    func,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.domain import Key
from services.feed.revisions import Folded, Stored
from services.kit.db import lock_keys, lock_keys_each

metadata = MetaData()
_uuid = UUID(as_uuid=False)

authors = Table(
    "authors",
    metadata,
    Column("user_id", _uuid, primary_key=True),
    Column("username", Text, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("celebrity", Boolean, nullable=False),
    # Shares their nights with nobody (services.kit.visibility): in no reader's feed.
    Column("hidden", Boolean, nullable=False, server_default="false"),
)

follows = Table(
    "follows",
    metadata,
    Column("follower_id", _uuid, primary_key=True),
    Column("followee_id", _uuid, primary_key=True),
)

#: `score` orders the feed (services.feed.domain.Key); `body` is the API's SleepEntry.
#: `fanned_out`: may be in followers' timelines (its author was no celebrity then, or has
#: stopped being one since).
entries = Table(
    "entries",
    metadata,
    Column("entry_id", _uuid, primary_key=True),
    Column("author_id", _uuid, nullable=False),
    Column("score", BigInteger, nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("fanned_out", Boolean, nullable=False),
    #: The transaction that last changed what the entry shows (services.feed.watching).
    Column("changed_xid", BigInteger, nullable=False),
)
#: The writing transaction's id, as a number (the column's default).
_CURRENT_XID = text("pg_current_xact_id()::text::bigint")
#: The oldest transaction still running: every row changed below it has committed (or not
#: at all), so no row can appear below it later.
_HORIZON = text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
#: Watchers are told of entry changes, and of the readers whose follows changed, at commit
#: (services.feed.watching).
CHANGES_CHANNEL = "feed_entries"
FOLLOWS_CHANNEL = "feed_follows"

readers = Table(
    "readers",
    metadata,
    Column("user_id", _uuid, primary_key=True),
    Column("last_seen", DateTime(timezone=True), nullable=False),
)

#: Per committed event, what it still has to do to Redis (services.feed.projector).
redis_effects = Table(
    "redis_effects",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("effects", JSONB, nullable=False),
)

_AUTHOR_LOCKS, _READER_LOCKS = 1, 2
AUTHOR_STRIPES = 256


def _stripe(author_id: str) -> str:
    return str(zlib.crc32(author_id.encode()) % AUTHOR_STRIPES)


async def lock_author(session: AsyncSession, author_id: str, *, shared: bool = False) -> None:
    await lock_keys(session, _AUTHOR_LOCKS, [_stripe(author_id)], shared=shared)


async def lock_authors(session: AsyncSession, author_ids: Iterable[str], *, shared: bool) -> None:
    await lock_keys(session, _AUTHOR_LOCKS, {_stripe(a) for a in author_ids}, shared=shared)


async def lock_reader(session: AsyncSession, reader_id: str) -> None:
    await lock_keys(session, _READER_LOCKS, [reader_id])


async def lock_readers_and_authors(
    session: AsyncSession, reader_ids: Iterable[str], shared: Mapping[str, bool]
) -> None:
    """The readers, then the authors (each shared or not as `shared` says; exclusive if
    another author of its stripe needs that), in the order reads take them: readers first."""
    await lock_keys(session, _READER_LOCKS, reader_ids)
    stripes: dict[str, bool] = {}
    for author_id, only_shared in shared.items():
        stripe = _stripe(author_id)
        stripes[stripe] = stripes.get(stripe, True) and only_shared
    await lock_keys_each(session, _AUTHOR_LOCKS, stripes)


@dataclass(frozen=True)
class AuthorRow:
    user_id: str
    username: str
    display_name: str
    celebrity: bool
    hidden: bool


async def save_author(
    session: AsyncSession, user_id: str, username: str, display_name: str
) -> None:
    """Name and display name; the celebrity flag has its own writer (set_celebrity)."""
    await session.execute(
        pg_insert(authors)
        .values(user_id=user_id, username=username, display_name=display_name, celebrity=False)
        .on_conflict_do_update(
            index_elements=[authors.c.user_id],
            set_={"username": username, "display_name": display_name},
        )
    )


async def set_celebrity(session: AsyncSession, user_id: str, celebrity: bool) -> bool:
    """Sets the flag; returns whether it changed."""
    before = await session.scalar(
        select(authors.c.celebrity).where(authors.c.user_id == user_id).with_for_update()
    )
    if before is None:
        await session.execute(
            pg_insert(authors)
            .values(user_id=user_id, username="", display_name="", celebrity=celebrity)
            .on_conflict_do_nothing()
        )
        return celebrity
    if before == celebrity:
        return False
    await session.execute(
        update(authors).where(authors.c.user_id == user_id).values(celebrity=celebrity)
    )
    return True


async def set_hidden(session: AsyncSession, user_id: str, hidden: bool) -> bool:
    """Sets whether the author is in no feed (the row exists: save_author first); returns
    whether it changed."""
    changed = await session.execute(
        update(authors)
        .where(authors.c.user_id == user_id, authors.c.hidden != hidden)
        .values(hidden=hidden)
        .returning(authors.c.user_id)
    )
    return changed.first() is not None


async def is_hidden(session: AsyncSession, user_id: str) -> bool:
    return bool(await session.scalar(select(authors.c.hidden).where(authors.c.user_id == user_id)))


async def is_celebrity(session: AsyncSession, user_id: str) -> bool:
    return bool(
        await session.scalar(select(authors.c.celebrity).where(authors.c.user_id == user_id))
    )


async def find_authors(session: AsyncSession, ids: Iterable[str]) -> dict[str, AuthorRow]:
    rows = await session.execute(select(authors).where(authors.c.user_id == any_(list(set(ids)))))
    return {row.user_id: AuthorRow(**row._mapping) for row in rows}


# The batch statements below are fixed texts over arrays, whatever the batch's size: the
# driver converts and PostgreSQL plans each once per connection, where a statement built
# per batch (a row of bound values each) cost more to build than to run.
_PAIRS = "unnest(CAST(:followers AS uuid[]), CAST(:followees AS uuid[])) AS p(f, e)"
_ADD_FOLLOWS = text(
    f"INSERT INTO follows (follower_id, followee_id) SELECT f, e FROM {_PAIRS}"
    " ON CONFLICT DO NOTHING"
)
_REMOVE_FOLLOWS = text(
    f"DELETE FROM follows USING {_PAIRS} WHERE follower_id = p.f AND followee_id = p.e"
)
_FOLLOWS_AMONG = text(
    "SELECT CAST(follower_id AS text), CAST(followee_id AS text) FROM follows"
    f" JOIN {_PAIRS} ON follower_id = p.f AND followee_id = p.e"
)


def _pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    ordered = sorted(set(pairs))
    return {"followers": [f for f, _e in ordered], "followees": [e for _f, e in ordered]}


async def add_follows(session: AsyncSession, pairs: Iterable[tuple[str, str]]) -> None:
    """(follower, followee) pairs, in one statement; those already there stay."""
    params = _pairs(pairs)
    if params["followers"]:
        await session.execute(_ADD_FOLLOWS, params)


async def notify_follows(session: AsyncSession, reader_ids: Iterable[str]) -> None:
    """Tell watchers, at commit, that these readers follow others now."""
    readers = sorted(set(reader_ids))
    if readers:
        await session.execute(
            text(f"SELECT pg_notify('{FOLLOWS_CHANNEL}', r) FROM unnest(CAST(:r AS text[])) r"),
            {"r": readers},
        )


async def remove_follows(session: AsyncSession, pairs: Iterable[tuple[str, str]]) -> None:
    params = _pairs(pairs)
    if params["followers"]:
        await session.execute(_REMOVE_FOLLOWS, params)


async def followees(
    session: AsyncSession, reader_id: str, *, hidden: bool = False
) -> dict[str, bool]:
    """Whom the reader follows and may read (hidden authors too with `hidden`, as for the
    locks of a rebuild, which an author's change of visibility must wait for), each with
    whether they are a celebrity."""
    query = (
        select(follows.c.followee_id, func.coalesce(authors.c.celebrity, False))
        .select_from(follows.outerjoin(authors, authors.c.user_id == follows.c.followee_id))
        .where(follows.c.follower_id == reader_id)
    )
    if not hidden:
        query = query.where(~func.coalesce(authors.c.hidden, False))
    return {followee: bool(celebrity) for followee, celebrity in await session.execute(query)}


async def active_followers(session: AsyncSession, author_id: str, since: datetime) -> list[str]:
    """Followers who have read their feed since `since`: the only ones fan-out writes to."""
    rows = await session.scalars(
        select(follows.c.follower_id)
        .join(readers, readers.c.user_id == follows.c.follower_id)
        .where(follows.c.followee_id == author_id, readers.c.last_seen >= since)
    )
    return list(rows)


async def stored_entries(session: AsyncSession, entry_ids: Iterable[str]) -> dict[str, Stored]:
    """What the store holds of these entries, their rows locked until the transaction ends."""
    rows = await session.execute(
        select(entries.c.entry_id, entries.c.revision, entries.c.deleted, entries.c.fanned_out)
        .where(entries.c.entry_id == any_(sorted(set(entry_ids))))
        .order_by(entries.c.entry_id)
        .with_for_update()
    )
    return {str(r.entry_id): Stored(r.revision, r.deleted, r.fanned_out) for r in rows}


async def celebrities_among(session: AsyncSession, user_ids: Iterable[str]) -> set[str]:
    wanted = list(set(user_ids))
    rows = await session.scalars(
        select(authors.c.user_id).where(authors.c.user_id == any_(wanted), authors.c.celebrity)
    )
    return {str(r) for r in rows}


_ENTRY_COLUMNS = ("entry_id", "author_id", "score", "revision", "body", "deleted", "fanned_out")
_INSERT_ENTRIES = text(
    f"INSERT INTO entries ({', '.join(_ENTRY_COLUMNS)}) SELECT * FROM unnest("
    "CAST(:entry_id AS uuid[]), CAST(:author_id AS uuid[]), CAST(:score AS bigint[]),"
    " CAST(:revision AS bigint[]), CAST(:body AS bytea[]), CAST(:deleted AS boolean[]),"
    " CAST(:fanned_out AS boolean[]))"
)


async def write_entries(session: AsyncSession, folded: Folded) -> None:
    """The rows a batch inserts, in one statement, and the columns it sets on stored rows."""
    if folded.inserts:
        rows = list(folded.inserts.values())
        columns = {c: [row[c] for row in rows] for c in _ENTRY_COLUMNS}
        await session.execute(_INSERT_ENTRIES, columns)
    for entry_id, values in folded.updates.items():
        await session.execute(
            update(entries)
            .where(entries.c.entry_id == entry_id)
            .values({**values, "changed_xid": _CURRENT_XID})
        )
    if folded.inserts or folded.updates:
        await session.execute(text(f"NOTIFY {CHANGES_CHANNEL}"))


async def mark_fanned_out(session: AsyncSession, author_id: str) -> None:
    """The author is no celebrity now: any of their entries may be in timelines from here on
    (pushed, or read by a rebuild), so a delete must look there."""
    await session.execute(
        update(entries)
        .where(entries.c.author_id == author_id, ~entries.c.fanned_out)
        .values(fanned_out=True)
    )


@dataclass(frozen=True)
class EntryRow:
    author_id: str
    key: Key
    body: bytes
    deleted: bool
    fanned_out: bool


async def find_entry(session: AsyncSession, entry_id: str) -> EntryRow | None:
    row = (
        await session.execute(
            select(
                entries.c.author_id,
                entries.c.score,
                entries.c.body,
                entries.c.deleted,
                entries.c.fanned_out,
            ).where(entries.c.entry_id == entry_id)
        )
    ).first()
    if row is None:
        return None
    key = Key(row.score, entry_id)
    return EntryRow(str(row.author_id), key, row.body, row.deleted, row.fanned_out)


async def find_entries(session: AsyncSession, entry_ids: Iterable[str]) -> dict[str, EntryRow]:
    rows = await session.execute(
        select(
            entries.c.entry_id,
            entries.c.author_id,
            entries.c.score,
            entries.c.body,
            entries.c.deleted,
            entries.c.fanned_out,
        ).where(entries.c.entry_id == any_(list(set(entry_ids))))
    )
    return {
        str(r.entry_id): EntryRow(
            str(r.author_id), Key(r.score, str(r.entry_id)), r.body, r.deleted, r.fanned_out
        )
        for r in rows
    }


async def follows_among(
    session: AsyncSession, pairs: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Those (follower, followee) pairs that are follows now."""
    params = _pairs(pairs)
    if not params["followers"]:
        return set()
    return {tuple(row) for row in await session.execute(_FOLLOWS_AMONG, params)}


async def active_followers_of(
    session: AsyncSession, author_ids: Iterable[str], since: datetime
) -> dict[str, list[str]]:
    """active_followers of each author, in one query."""
    wanted = list(set(author_ids))
    if not wanted:
        return {}
    rows = await session.execute(  # ids as text: a fan-out can be 100,000 of them
        select(cast(follows.c.followee_id, Text), cast(follows.c.follower_id, Text))
        .join(readers, readers.c.user_id == follows.c.follower_id)
        .where(follows.c.followee_id == any_(wanted), readers.c.last_seen >= since)
    )
    found: dict[str, list[str]] = {}
    for author_id, follower_id in rows:
        found.setdefault(author_id, []).append(follower_id)
    return found


async def follows_now(session: AsyncSession, follower_id: str, followee_id: str) -> bool:
    return (
        await session.scalar(
            select(literal(True)).where(
                follows.c.follower_id == follower_id, follows.c.followee_id == followee_id
            )
        )
    ) is not None


async def entries_by(session: AsyncSession, author_id: str, entry_ids: list[str]) -> list[str]:
    """Those of `entry_ids` that are the author's, live or deleted."""
    if not entry_ids:
        return []
    rows = await session.scalars(
        select(entries.c.entry_id).where(
            entries.c.entry_id.in_(entry_ids), entries.c.author_id == author_id
        )
    )
    return [str(r) for r in rows]


async def note_effects(session: AsyncSession, event_id: str, effects: list[dict]) -> None:
    """What the event still has to do to Redis once this transaction commits."""
    await note_all_effects(session, [(event_id, effects)])


_NOTE_EFFECTS = text(
    "INSERT INTO redis_effects (event_id, effects) SELECT event_id, effects"
    " FROM jsonb_to_recordset(CAST(:notes AS jsonb)) AS n(event_id text, effects jsonb)"
    " ON CONFLICT DO NOTHING"
)


async def note_all_effects(session: AsyncSession, notes: list[tuple[str, list[dict]]]) -> None:
    """note_effects of many events, in one statement."""
    rows = [{"event_id": event_id, "effects": effects} for event_id, effects in notes if effects]
    if rows:
        await session.execute(_NOTE_EFFECTS, {"notes": json.dumps(rows)})


async def noted_effects(session: AsyncSession, event_ids: list[str]) -> dict[str, list[dict]]:
    """The effects still noted for any of `event_ids`, by event id."""
    rows = await session.execute(
        select(redis_effects.c.event_id, redis_effects.c.effects).where(
            redis_effects.c.event_id == any_(event_ids)
        )
    )
    return {event_id: effects for event_id, effects in rows}


async def forget_effects(session: AsyncSession, event_ids: list[str]) -> None:
    await session.execute(delete(redis_effects).where(redis_effects.c.event_id == any_(event_ids)))


async def recent_entries_of(
    session: AsyncSession, author_ids: Iterable[str], limit: int
) -> dict[str, list[Key]]:
    """recent_entries of each author, in one query (an index scan per author)."""
    rows = await session.execute(
        text(
            "SELECT a.id, e.score, e.entry_id FROM unnest(CAST(:ids AS uuid[])) AS a(id)"
            " CROSS JOIN LATERAL (SELECT score, entry_id FROM entries"
            " WHERE author_id = a.id AND NOT deleted"
            " ORDER BY score DESC, entry_id DESC LIMIT :limit) AS e"
        ),
        {"ids": sorted(set(author_ids)), "limit": limit},
    )
    found: dict[str, list[Key]] = {}
    for author_id, score, entry_id in rows:
        found.setdefault(str(author_id), []).append(Key(score, str(entry_id)))
    return found


async def recent_entries(session: AsyncSession, author_id: str, limit: int) -> list[Key]:
    """An author's newest live entries."""
    query = select(entries.c.score, entries.c.entry_id).where(
        entries.c.author_id == author_id, ~entries.c.deleted
    )
    rows = await session.execute(
        query.order_by(entries.c.score.desc(), entries.c.entry_id.desc()).limit(limit)
    )
    return [Key(score, str(entry_id)) for score, entry_id in rows]


async def feed_keys(
    session: AsyncSession,
    reader_id: str,
    cursor: Key | None,
    limit: int,
    *,
    celebrities: bool = True,
) -> list[Key]:
    """The reader's feed computed from the read models alone: the slow path and the rebuild.

    `celebrities=False` leaves out authors who are celebrities (a timeline holds
    only what fan-out would have pushed into it). Hidden authors are left out always.
    """
    followed = select(follows.c.followee_id).where(
        follows.c.follower_id == reader_id,
        ~follows.c.followee_id.in_(select(authors.c.user_id).where(authors.c.hidden)),
    )
    if not celebrities:
        followed = followed.where(
            ~follows.c.followee_id.in_(select(authors.c.user_id).where(authors.c.celebrity))
        )
    query = select(entries.c.score, entries.c.entry_id).where(
        entries.c.author_id.in_(followed), ~entries.c.deleted
    )
    if cursor is not None:
        query = query.where(
            tuple_(entries.c.score, entries.c.entry_id)
            < tuple_(literal(cursor.score, BigInteger), literal(cursor.entry_id, _uuid))
        )
    rows = await session.execute(
        query.order_by(entries.c.score.desc(), entries.c.entry_id.desc()).limit(limit)
    )
    return [Key(score, str(entry_id)) for score, entry_id in rows]


async def bodies(session: AsyncSession, entry_ids: Iterable[str]) -> dict[str, tuple[str, bytes]]:
    """Live entries by id: (author id, serialized SleepEntry)."""
    ids = list(set(entry_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(entries.c.entry_id, entries.c.author_id, entries.c.body).where(
            and_(entries.c.entry_id.in_(ids), ~entries.c.deleted)
        )
    )
    return {str(e): (str(a), body) for e, a, body in rows}


async def touch_reader(session: AsyncSession, reader_id: str, now: datetime) -> None:
    """The reader reads: fan-out writes to their timeline again."""
    await session.execute(
        pg_insert(readers)
        .values(user_id=reader_id, last_seen=now)
        .on_conflict_do_update(index_elements=[readers.c.user_id], set_={"last_seen": now})
    )


async def forget_user(session: AsyncSession, user_id: str) -> tuple[list[str], list[str]]:
    """Delete every row of a user (as author, reader and follower, both ways); returns the
    ids of their entries and of their followers, for the Redis effect."""
    entry_ids = [
        str(e)
        for e in await session.scalars(
            select(entries.c.entry_id).where(entries.c.author_id == user_id)
        )
    ]
    followers = [
        str(f)
        for f in await session.scalars(
            select(follows.c.follower_id).where(follows.c.followee_id == user_id)
        )
    ]
    await session.execute(delete(entries).where(entries.c.author_id == user_id))
    await session.execute(
        delete(follows).where(
            (follows.c.follower_id == user_id) | (follows.c.followee_id == user_id)
        )
    )
    await session.execute(delete(readers).where(readers.c.user_id == user_id))
    await session.execute(delete(authors).where(authors.c.user_id == user_id))
    return entry_ids, followers


class Change(NamedTuple):
    """An entry as one transaction left it, at its place in the order watchers follow."""

    xid: int
    entry_id: str
    author_id: str
    deleted: bool
    body: bytes


async def horizon(session: AsyncSession) -> int:
    return (await session.execute(_HORIZON)).scalar_one()


async def changes(
    session: AsyncSession,
    after: tuple[int, str],
    limit: int,
    *,
    below: int | None = None,
    upto: tuple[int, str] | None = None,
    authors: Iterable[str] | None = None,
) -> list[Change]:
    """Entries changed after `after` in (transaction, entry id) order: by transactions
    below `below` (a horizon), or up to and including `upto`; of `authors` only, if given."""
    position = tuple_(entries.c.changed_xid, entries.c.entry_id)
    query = (
        select(
            entries.c.changed_xid,
            cast(entries.c.entry_id, Text),
            cast(entries.c.author_id, Text),
            entries.c.deleted,
            entries.c.body,
        )
        .where(position > _position(after))
        .order_by(entries.c.changed_xid, entries.c.entry_id)
        .limit(limit)
    )
    if below is not None:
        query = query.where(entries.c.changed_xid < below)
    if upto is not None:
        query = query.where(position <= _position(upto))
    if authors is not None:
        query = query.where(entries.c.author_id == any_(cast(sorted(authors), ARRAY(_uuid))))
    return [Change(*row) for row in await session.execute(query)]


def _position(at: tuple[int, str]):
    return tuple_(literal(at[0], BigInteger), literal(at[1], _uuid))
