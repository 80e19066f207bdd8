"""The feed service's back end for one test (see tests/event_world.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from services.feed import app
from services.feed.config import FeedSettings
from services.feed.domain import Key
from services.feed.reading import FeedPage
from services.feed.timelines import SENTINEL, timeline_key
from services.kit.consumer import ConsumerRunner
from tests.event_world import RUNNER_OPTIONS, EventWorld


def feed_settings(**overrides) -> FeedSettings:
    """The knobs `app.parts` reads; no service settings needed."""
    base = FeedSettings(
        service=None,  # type: ignore[arg-type]
        timeline_length=1000,
        inactive_after=timedelta(days=30),
        rebuild_wait=2.0,
        fanout_batch=500,
    )
    return replace(base, **overrides)


@dataclass
class FeedWorld(EventWorld):
    settings: FeedSettings = None  # type: ignore[assignment]
    migrations: Path = app.MIGRATIONS
    topic_prefix = "feed"
    redis_db = 13
    service_settings = staticmethod(feed_settings)

    def assemble(self) -> None:
        self.timelines, self.projector, self.reader = app.parts(self.settings, self.db, self.redis)
        self.groups = (f"{self.user_topic}.graph", f"{self.sleep_topic}.entries")

    def make_runners(self):
        graph, entries = self.projector.subscriptions(**self.consumer_names())
        return [
            (ConsumerRunner(self.db, self.bootstrap, graph, **RUNNER_OPTIONS), self.user_topic),
            (ConsumerRunner(self.db, self.bootstrap, entries, **RUNNER_OPTIONS), self.sleep_topic),
        ]

    def star(self, name: str = "") -> str:
        """A user who is a celebrity."""
        user_id = self.user(name)
        self.celebrity(user_id, True)
        return user_id

    async def active_reader(self, *authors: str) -> str:
        """A new reader following `authors` who has read their feed once: fan-out writes to them."""
        reader = self.user()
        for author in authors:
            self.follow(reader, author)
        await self.settled()
        await self.page(reader)
        assert await self.timeline(reader) is not None
        return reader

    # -- reading -------------------------------------------------------------------

    async def page(self, reader: str, size: int = 20, cursor: Key | None = None) -> FeedPage:
        return await self.reader.page(reader, cursor, size)

    async def feed(self, reader: str, size: int = 7) -> list[str]:
        """Every entry id of the reader's feed, page after page."""
        ids, cursor = [], None
        while True:
            page = await self.reader.page(reader, cursor, size)
            ids += [item.entry.id for item in page.items]
            if page.next_cursor is None:
                return ids
            cursor = page.next_cursor

    async def timeline(self, reader: str) -> list[str] | None:
        """What fan-out put in the reader's timeline (None: there is none), newest first."""
        key = timeline_key(reader)
        if not await self.redis.exists(key):
            return None
        members = await self.redis.zrevrange(key, 0, -1)
        return [m.decode() for m in members if m.decode() != SENTINEL]
