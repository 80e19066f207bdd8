"""Watching a feed (WatchFeed): every entry change in commit order, handed to its watchers.

Each entry row carries the id of the transaction that last changed it
(store.entries.changed_xid). Every row changed by a transaction older than the
oldest one still running (the snapshot's xmin: the horizon) has committed, so
reading rows below the horizon in (transaction id, entry id) order never
passes one that commits later. That order is the stream's: a Position in it
is a cursor any instance can resume from.

One EntryChanges per instance reads the rows past its position, woken by the
projector's NOTIFY at commit (or every `interval`), and hands each to the
watchers of its author (fan-out and celebrities alike: it reads the durable
rows, not the Redis timelines). A watcher that resumes from an older cursor
first reads its own authors' rows up to the position the instance stood at
when it joined; everything after reaches it from the instance.

Whom a watcher follows is read when it joins, again when the projector
notifies that its reader's follows changed, and every `refollow` seconds (an
author's privacy); a change sends it a reset.

A watcher holds at most `queue_size` changes: one that cannot keep up is told
to read its feed again (a reset) and skips ahead, so a slow client costs
memory in proportion to that bound, never to what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import text
from zentry.feed.v1 import feed_service_pb2 as pb
from zentry.sleep.v1 import sleep_entry_pb2

from services.feed import store
from services.kit import paging
from services.kit.db import Database
from services.kit.errors import InvalidArgument, ResourceExhausted, Unavailable

_log = logging.getLogger(__name__)

NIL = "00000000-0000-0000-0000-000000000000"  # below every entry id
#: Rows read a query; a resuming watcher reads at most this many before it is reset instead.
BATCH = 500
CATCH_UP = 1000
#: While rows wait above the horizon (an older transaction is still running), look again this
#: often rather than at the next interval.
PENDING_RECHECK = 0.05
#: How long a new watcher waits for the instance's first read of the changes.
READY_WAIT = 10.0
#: Put in a watcher's queue when its reader's follows changed: read them again.
REFOLLOW = "refollow"


class Position(NamedTuple):
    """A place in the order of entry changes: after the change of `entry_id` by `xid`."""

    xid: int
    entry_id: str


def encode_cursor(position: Position, reader_id: str) -> str:
    return paging.encode_token({"x": position.xid, "e": position.entry_id}, reader_id)


def decode_cursor(token: str, reader_id: str) -> Position | None:
    """The position a cursor stands for (None for none); InvalidArgument naming `cursor` if
    it is not one this reader's stream gave."""
    try:
        cursor = paging.decode_token(token, {"x", "e"}, reader_id)
    except InvalidArgument:
        cursor = {}
    if cursor is None:
        return None
    xid, entry_id = cursor.get("x"), cursor.get("e")
    if not (isinstance(xid, int) and 0 <= xid < 2**63 and isinstance(entry_id, str)):
        raise InvalidArgument.field(
            "cursor", "is not a cursor your feed's stream gave; watch again without it"
        )
    return Position(xid, entry_id)


@dataclass(eq=False)
class Watch:
    """One WatchFeed call: whose entries it follows, and what waits to be sent."""

    reader_id: str
    authors: frozenset[str]
    #: The last change queued (or, before any, where it starts): it has everything up to it.
    cursor: Position
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    queue_size: int = 256
    behind: bool = False

    def offer(self, change: store.Change, author: pb.Author | None) -> None:
        """Queue a change unless the watcher has it already; past the bound, mark it behind."""
        position = Position(change.xid, change.entry_id)
        if position <= self.cursor or self.behind:
            return
        self.cursor = position
        if self.queue.qsize() >= self.queue_size:
            self.behind = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)  # wakes the sender to reset
            return
        self.queue.put_nowait((change, author))


def message(change: store.Change, author: pb.Author | None, reader_id: str):
    """What a watcher is sent for a change."""
    position = Position(change.xid, change.entry_id)
    cursor = encode_cursor(position, reader_id)
    if change.deleted:
        return pb.WatchFeedResponse(removed_entry_id=change.entry_id, cursor=cursor)
    entry = sleep_entry_pb2.SleepEntry.FromString(change.body)
    item = pb.FeedItem(author=author or pb.Author(user_id=change.author_id), entry=entry)
    return pb.WatchFeedResponse(item=item, cursor=cursor)


class EntryChanges:
    """The instance's reader of entry changes, and its watchers by author."""

    def __init__(
        self, db: Database, *, interval: float = 1.0, max_watchers: int = 2000, per_reader=4
    ):
        self._db = db
        self._interval = interval
        self._max_watchers = max_watchers
        self._per_reader = per_reader
        self._watchers: set[Watch] = set()
        self._by_author: dict[str, set[Watch]] = defaultdict(set)
        self._of_reader: dict[str, set[Watch]] = defaultdict(set)
        self.position: Position | None = None  # None until the first read
        self._ready = asyncio.Event()
        self._stopping = asyncio.Event()

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Follow the rows until `stop()`: each commit's NOTIFY wakes it, else `interval`."""
        while not self._stopping.is_set():
            try:
                async with self._db.session() as conn:
                    await conn.execute(text(f"LISTEN {store.CHANGES_CHANNEL}"))
                    await conn.execute(text(f"LISTEN {store.FOLLOWS_CHANNEL}"))
                    await conn.commit()
                    listener = (await conn.get_raw_connection()).driver_connection
                    try:
                        while not self._stopping.is_set():
                            pending = await self.read()
                            await self._until_notified(
                                listener, PENDING_RECHECK if pending else self._interval
                            )
                    finally:
                        await conn.invalidate()  # not pooled: the LISTEN ends with it
            except Exception:
                _log.exception("reading the feed's entry changes failed; retrying in 1 s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 1.0)

    async def _until_notified(self, listener, timeout: float) -> None:
        """Until a notification or `timeout`; a reader's changed follows go to its watchers."""
        notified = listener.notifies(timeout=timeout, stop_after=1)
        async with contextlib.aclosing(notified):
            async for note in notified:
                if note.channel == store.FOLLOWS_CHANNEL:
                    for watch in self._of_reader.get(note.payload, ()):
                        watch.queue.put_nowait(REFOLLOW)

    async def read(self) -> bool:
        """Hand out every change committed below the horizon; whether some wait above it."""
        while True:
            async with self._db.transaction() as session:
                horizon = await store.horizon(session)
                after = self.position or Position(horizon, NIL)
                rows = []
                if self._watchers:
                    rows = await store.changes(session, after, BATCH, below=horizon)
                authors = await self._authors(session, rows)
                pending = False
                if len(rows) < BATCH and self._watchers:
                    newer = await store.changes(session, rows[-1][:2] if rows else after, 1)
                    pending = bool(newer)
            for change in rows:
                for watch in self._by_author.get(change.author_id, ()):
                    watch.offer(change, authors.get(change.author_id))
            if len(rows) < BATCH:  # all changes below the horizon are handed out
                self.position = max(after, Position(horizon, NIL))
                self._ready.set()
                return pending
            self.position = Position(rows[-1].xid, rows[-1].entry_id)

    async def _authors(self, session, rows: list[store.Change]) -> dict[str, pb.Author]:
        watched = {c.author_id for c in rows if c.author_id in self._by_author and not c.deleted}
        if not watched:
            return {}
        found = await store.find_authors(session, watched)
        return {
            user_id: pb.Author(user_id=user_id, username=r.username, display_name=r.display_name)
            for user_id, r in found.items()
        }

    # -- watchers ----------------------------------------------------------------------

    async def join(self, reader_id: str, cursor: Position | None, queue_size: int) -> Watch:
        """A new watcher of the reader's feed, from `cursor` (or from now); ResourceExhausted
        when this instance, or this reader here, has as many as it takes."""
        if len(self._watchers) >= self._max_watchers:
            raise ResourceExhausted("This server watches as many feeds as it can; try again.")
        if len(self._of_reader.get(reader_id, ())) >= self._per_reader:
            raise ResourceExhausted(
                f"Your feed has as many streams open as one reader may ({self._per_reader}); "
                "close one first."
            )
        async with self._db.transaction() as session:
            authors = frozenset(await store.followees(session, reader_id))
        try:  # the instance's reader has read once (it retries while PostgreSQL is away)
            await asyncio.wait_for(self._ready.wait(), READY_WAIT)
        except TimeoutError:
            raise Unavailable("Your feed cannot be watched right now; try again.") from None
        start = self.position
        watch = Watch(reader_id, authors, cursor or start, queue_size=queue_size)
        self._add(watch)
        if cursor is not None and cursor < start:
            await self._catch_up(watch, cursor, start)
        return watch

    async def _catch_up(self, watch: Watch, cursor: Position, upto: Position) -> None:
        """The watcher's authors' changes from its cursor to where this instance stood when
        it joined (what comes after reaches it from `read`)."""
        async with self._db.transaction() as session:
            rows = await store.changes(
                session, cursor, CATCH_UP + 1, upto=upto, authors=watch.authors
            )
            authors = await store.find_authors(session, {c.author_id for c in rows})
        if len(rows) > CATCH_UP:
            watch.behind = True
            watch.queue.put_nowait(None)
            return
        queued = []
        while not watch.queue.empty():  # what `read` handed it meanwhile comes after
            queued.append(watch.queue.get_nowait())
        for change in rows:
            row = authors.get(change.author_id)
            author = row and pb.Author(
                user_id=row.user_id, username=row.username, display_name=row.display_name
            )
            watch.queue.put_nowait((change, author))
        for item in queued:
            watch.queue.put_nowait(item)

    async def refollow(self, watch: Watch) -> bool:
        """Read whom the watcher follows again; whether that changed (then it is re-indexed)."""
        async with self._db.transaction() as session:
            authors = frozenset(await store.followees(session, watch.reader_id))
        if authors == watch.authors:
            return False
        self._remove(watch)
        watch.authors = authors
        self._add(watch)
        return True

    def leave(self, watch: Watch) -> None:
        self._remove(watch)

    def _add(self, watch: Watch) -> None:
        self._watchers.add(watch)
        self._of_reader[watch.reader_id].add(watch)
        for author in watch.authors:
            self._by_author[author].add(watch)

    def _remove(self, watch: Watch) -> None:
        if watch not in self._watchers:
            return
        self._watchers.discard(watch)
        self._of_reader[watch.reader_id].discard(watch)
        if not self._of_reader[watch.reader_id]:
            del self._of_reader[watch.reader_id]
        for author in watch.authors:
            watchers = self._by_author.get(author)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._by_author[author]
