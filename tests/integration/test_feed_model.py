"""A model check of the feed's read path against real PostgreSQL and Redis.

Hypothesis drives random sequences of what can happen to a feed: entries
created (also out of time order, and several in the same microsecond),
updated and deleted, follows and unfollows, celebrity promotions and
demotions, timelines, celebrity sets and posts caches expiring, Redis flushed.
Events go straight into the projector's handlers, one transaction each, and
then their Redis effects, as the consumer applies them. Timelines are 5 long,
so they are trimmed all the time. After every step, every reader pages through their whole feed at
the step's page size, and it must equal the model: each live entry of the
authors they follow, once, newest first, as the read models in PostgreSQL
also say. A failure shrinks to a short sequence; keep it as a plain
regression test in test_feed_service.py.

How many sequences and steps: tests/models.py.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)
from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev

from services.feed import app, store
from services.feed.domain import score
from services.feed.timelines import celebs_key, posts_key, timeline_key
from services.kit.events import envelope
from tests import event_world
from tests.event_world import NOW, night
from tests.feed_world import feed_settings
from tests.models import StoreMachine, run_model

MODEL_REDIS_DB = 10
AUTHORS, READERS = 3, 2


@dataclass
class Night:
    state: sev.SleepEntryState
    live: bool = True


class FeedModel(StoreMachine):
    """The system under test is the feed service's parts; the model is a few sets."""

    entries = Bundle("entries")

    def __init__(self, loop: asyncio.AbstractEventLoop, dsn: str, redis_url: str):
        super().__init__(loop, dsn, redis_url)
        self.timelines, self.projector, self.reader = app.parts(
            feed_settings(timeline_length=5, rebuild_wait=10.0), self.db, self.redis
        )
        self.run_id = uuid.uuid4().int >> 64  # ids of this sequence, ordered by creation
        self.made = 0
        self.nights: dict[str, Night] = {}
        self.follows: set[tuple[str, str]] = set()
        self.size = 3

    def new_id(self) -> str:
        self.made += 1
        return str(uuid.UUID(int=(self.run_id << 64) | self.made))

    def apply(self, handler, payload) -> None:
        """As the consumer applies an event: the handler's transaction, then its effects."""
        event = envelope(payload, "model", "test")

        async def once():
            async with self.db.transaction() as session:
                await handler(event, payload, session)
            await self.projector.after_commit([event])

        self.run(once())

    # -- the world -------------------------------------------------------------------

    @initialize(target=entries)
    def people(self):
        """Authors with three nights each; each reader follows two: full timelines at once."""
        self.run(self.redis.flushdb())
        self.authors = [self.new_id() for _ in range(AUTHORS)]
        self.readers = [self.new_id() for _ in range(READERS)]
        for user in self.authors + self.readers:
            profile = uev.UserProfile(user_id=user, username=f"u{user[-6:]}", time_zone="UTC")
            self.apply(self.projector.on_profile, uev.UserRegistered(profile=profile))
        for i, reader in enumerate(self.readers):  # read once: active, with a timeline
            self.run(self.reader.page(reader, None, 1))
            self.follow(i, i)
            self.follow(i, i + 1)
        made = []
        for a in range(AUTHORS):
            made += self.create(a, [10 * a, 10 * a + 5, 40]).values
        return multiple(*made)

    def author(self, i: int) -> str:
        return self.authors[i % AUTHORS]

    def reader_(self, i: int) -> str:
        return self.readers[i % READERS]

    # -- what happens ------------------------------------------------------------------

    @rule(
        target=entries,
        author=st.integers(0, AUTHORS - 1),
        seconds=st.lists(st.integers(0, 40), min_size=1, max_size=6),
    )
    def create(self, author, seconds):
        """Nights recorded `seconds` after a fixed instant: often out of order, some tied."""
        made = []
        for second in seconds:
            state = night(self.author(author), NOW + timedelta(seconds=second))
            state.entry_id = self.new_id()
            self.apply(self.projector.on_entry, sev.SleepEntryCreated(entry=state))
            self.nights[state.entry_id] = Night(state)
            made.append(state.entry_id)
        return multiple(*made)

    @rule(entry=entries, note=st.sampled_from(["", "restless", "slept well"]))
    def update(self, entry, note):
        night = self.nights[entry]
        new = sev.SleepEntryState()
        new.CopyFrom(night.state)
        new.note, new.revision = note, night.state.revision + 1
        self.apply(self.projector.on_entry, sev.SleepEntryUpdated(entry=new, previous=night.state))
        night.state = new

    @rule(entry=consumes(entries))
    def delete(self, entry):
        night = self.nights[entry]
        self.apply(self.projector.on_entry, sev.SleepEntryDeleted(entry=night.state))
        night.live = False

    @rule(reader=st.integers(0, READERS - 1), author=st.integers(0, AUTHORS - 1))
    def follow(self, reader, author):
        pair = (self.reader_(reader), self.author(author))
        self.apply(
            self.projector.on_follow, uev.FollowCreated(follower_id=pair[0], followee_id=pair[1])
        )
        self.follows.add(pair)

    @rule(reader=st.integers(0, READERS - 1), author=st.integers(0, AUTHORS - 1))
    def unfollow(self, reader, author):
        pair = (self.reader_(reader), self.author(author))
        self.apply(
            self.projector.on_follow, uev.FollowDeleted(follower_id=pair[0], followee_id=pair[1])
        )
        self.follows.discard(pair)

    @rule(author=st.integers(0, AUTHORS - 1), celebrity=st.booleans())
    def celebrity(self, author, celebrity):
        change = uev.CelebrityStatusChanged(user_id=self.author(author), celebrity=celebrity)
        self.apply(self.projector.on_celebrity, change)

    @rule(reader=st.integers(0, READERS - 1), which=st.sampled_from(["timeline", "celebs"]))
    def expire_reader_key(self, reader, which):
        key = (timeline_key if which == "timeline" else celebs_key)(self.reader_(reader))
        self.run(self.redis.delete(key))

    @rule(author=st.integers(0, AUTHORS - 1))
    def expire_posts(self, author):
        self.run(self.redis.delete(posts_key(self.author(author))))

    @rule()
    def flush_redis(self):
        self.run(self.redis.flushdb())

    @rule(size=st.integers(1, 7))
    def page_size(self, size):
        self.size = size

    # -- what every reader must see ----------------------------------------------------

    def expected(self, reader: str) -> list[tuple[str, str]]:
        live = [n.state for n in self.nights.values() if n.live]
        mine = [s for s in live if (reader, s.user_id) in self.follows]
        mine.sort(key=lambda s: (score(s.create_time), s.entry_id), reverse=True)
        return [(s.entry_id, s.note) for s in mine]

    async def paged(self, reader: str) -> list[tuple[str, str]]:
        seen, cursor = [], None
        for _ in range(100):
            page = await self.reader.page(reader, cursor, self.size)
            assert len(page.items) <= self.size
            seen += [(item.entry.id, item.entry.note) for item in page.items]
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor
        raise AssertionError("the pages never ended")

    async def stored(self, reader: str) -> list[str]:
        async with self.db.transaction() as session:
            return [k.entry_id for k in await store.feed_keys(session, reader, None, 1000)]

    @invariant()
    def every_reader_pages_through_exactly_their_feed(self):
        if not hasattr(self, "readers"):
            return
        self.checked()
        for reader in self.readers:
            want = self.expected(reader)
            assert self.run(self.stored(reader)) == [entry_id for entry_id, _ in want]
            assert self.run(self.paged(reader)) == want, f"reader {reader}, pages of {self.size}"


def test_feed_pages_equal_the_model_whatever_happens(blank_database, settings):
    redis_url = event_world.redis_url(settings, MODEL_REDIS_DB)
    run_model(FeedModel, blank_database, app.MIGRATIONS, redis_url)
