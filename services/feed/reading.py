"""Reading a feed: the reader's timeline merged with their celebrities' posts, hydrated.

The fast path is one Redis round trip (page.lua): the timeline's slice and
the slices of the followed celebrities' recent posts (fan-in), merged, with
the cached entries and authors attached. Whatever Redis lacks is rebuilt from
PostgreSQL under the store's locks (a new reader, an expired or flushed key),
and where a page reaches the floor of a capped sorted set (below which it
may lack entries) it continues from PostgreSQL, so deep pages are complete too.

A reader whose timeline takes longer than `rebuild_wait` to rebuild gets
this page from PostgreSQL with `rebuilding` set, while the rebuild goes on;
when Redis is unreachable every read takes the PostgreSQL path, and Redis is
tried again a second later (kit.fallback), so the service recovers by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from zentry.feed.v1 import feed_service_pb2
from zentry.sleep.v1 import sleep_entry_pb2

from services.feed import store
from services.feed.activity import Activity
from services.feed.domain import Key
from services.feed.timelines import Page, Timelines, newest
from services.kit.db import Database
from services.kit.fallback import RedisFallback

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedPage:
    items: list[feed_service_pb2.FeedItem]
    next_cursor: Key | None
    rebuilding: bool = False


class FeedReader:
    def __init__(self, db: Database, timelines: Timelines, activity: Activity, rebuild_wait: float):
        self._db = db
        self._timelines = timelines
        self._activity = activity
        self._rebuild_wait = rebuild_wait
        self._rebuilds: dict[str, asyncio.Task] = {}
        self._redis = RedisFallback("feeds")

    async def page(self, reader_id: str, cursor: Key | None, size: int) -> FeedPage:
        await self._record_activity(reader_id)
        page = await self._redis.attempt(lambda: self._page_from_redis(reader_id, cursor, size))
        if page is not None:
            return page
        keys = await self._keys_from_db(reader_id, cursor, size + 1)
        return await self._finish(keys, size, use_redis=False)

    async def _record_activity(self, reader_id: str) -> None:
        now = datetime.now(UTC)
        if not self._activity.due(reader_id, now):
            return
        try:
            async with self._db.transaction() as session:
                await store.touch_reader(session, reader_id, now)
        except Exception as error:  # the read goes on; the next one records it
            self._activity.forget(reader_id)
            _log.warning("could not record that %s read their feed: %r", reader_id, error)

    # -- which entries -------------------------------------------------------------

    async def _page_from_redis(self, reader_id: str, cursor: Key | None, size: int) -> FeedPage:
        found = await self._timelines.page(reader_id, cursor, size)
        if found is None and await self._rebuilt(reader_id):
            found = await self._timelines.page(reader_id, cursor, size)
        if isinstance(found, list):  # celebrities whose recent posts are not cached
            await self._rebuild_posts(found)
            found = await self._timelines.page(reader_id, cursor, size)
        if not isinstance(found, Page):  # still rebuilding, or lost again at once
            keys = await self._keys_from_db(reader_id, cursor, size + 1)
            return await self._finish(keys, size, use_redis=True, rebuilding=found is None)
        keys = found.keys
        if found.short:  # a capped set may have dropped what comes next
            after = keys[-1] if keys else cursor
            keys = keys + await self._keys_from_db(reader_id, after, size + 1 - len(keys))
        return await self._finish(
            keys, size, use_redis=True, bodies=found.bodies, authors=found.authors
        )

    async def _keys_from_db(self, reader_id: str, cursor: Key | None, limit: int) -> list[Key]:
        async with self._db.transaction() as session:
            return await store.feed_keys(session, reader_id, cursor, limit)

    # -- rebuilds ------------------------------------------------------------------

    async def _rebuilt(self, reader_id: str) -> bool:
        """Rebuild the reader's timeline (once, however many reads ask); wait a little for it."""
        task = self._rebuilds.get(reader_id)
        if task is None:
            task = asyncio.create_task(self._rebuild(reader_id))
            self._rebuilds[reader_id] = task
            task.add_done_callback(lambda done: self._rebuild_done(reader_id, done))
        done, _ = await asyncio.wait({task}, timeout=self._rebuild_wait)
        return bool(done) and task.exception() is None

    def _rebuild_done(self, reader_id: str, task: asyncio.Task) -> None:
        self._rebuilds.pop(reader_id, None)
        if not task.cancelled() and task.exception() is not None:
            _log.warning("rebuilding the timeline of %s failed: %r", reader_id, task.exception())

    async def _rebuild(self, reader_id: str) -> None:
        async with self._db.transaction() as session:
            await store.lock_reader(session, reader_id)
            await store.lock_authors(
                session, await store.followees(session, reader_id, hidden=True), shared=True
            )
            await store.touch_reader(session, reader_id, datetime.now(UTC))
            followed = await store.followees(session, reader_id)
            length = self._timelines.length
            items, floor = newest(
                await store.feed_keys(session, reader_id, None, length + 1, celebrities=False),
                length,
            )
            celebrities = [author for author, celebrity in followed.items() if celebrity]
            await self._timelines.write_reader(reader_id, items, floor, celebrities)

    async def _rebuild_posts(self, author_ids: Sequence[str]) -> None:
        async with self._db.transaction() as session:
            await store.lock_authors(session, author_ids, shared=True)
            length = self._timelines.length
            for author in author_ids:
                recent = await store.recent_entries(session, author, length + 1)
                await self._timelines.write_posts(author, *newest(recent, length))

    # -- what each entry shows -----------------------------------------------------

    async def _finish(
        self,
        keys: list[Key],
        size: int,
        *,
        use_redis: bool,
        rebuilding: bool = False,
        bodies: dict[str, bytes] | None = None,
        authors: dict[str, bytes] | None = None,
    ) -> FeedPage:
        """The page's items from the cached entries and authors, and the store for the rest."""
        next_cursor = keys[size - 1] if len(keys) > size else None
        keys = keys[:size]
        bodies, authors = dict(bodies or {}), dict(authors or {})
        missing = [k.entry_id for k in keys if k.entry_id not in bodies]
        stored: dict[str, tuple[str, bytes]] = {}
        if missing:
            async with self._db.transaction() as session:
                stored = await store.bodies(session, missing)
            bodies.update({entry_id: body for entry_id, (_a, body) in stored.items()})
        entries = {i: sleep_entry_pb2.SleepEntry.FromString(b) for i, b in bodies.items()}
        unknown = {e.user_id for e in entries.values()} - authors.keys()
        profiles: dict[str, bytes] = {}
        if unknown:
            async with self._db.transaction() as session:
                rows = await store.find_authors(session, unknown)
            profiles = {
                user_id: feed_service_pb2.Author(
                    user_id=user_id, username=row.username, display_name=row.display_name
                ).SerializeToString()
                for user_id, row in rows.items()
            }
            authors.update(profiles)
        if use_redis:
            await self._timelines.refill(stored, profiles)
        shown = {i: feed_service_pb2.Author.FromString(b) for i, b in authors.items()}
        items = [
            feed_service_pb2.FeedItem(
                author=shown.get(entry.user_id) or feed_service_pb2.Author(user_id=entry.user_id),
                entry=entry,
            )
            for entry in (entries.get(k.entry_id) for k in keys)
            if entry is not None  # deleted since the page was cut
        ]
        return FeedPage(items, next_cursor, rebuilding)
