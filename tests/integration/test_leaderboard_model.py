"""A model check of the leaderboards' Redis boards against real PostgreSQL and Redis.

Hypothesis drives random sequences of nights created, moved to another day or
length, and deleted (each event delivered once or twice in its batch), while
board keys expire one by one or a window's all at once, and Redis is flushed.
Events go straight into the projector, one batch per transaction, as the
batch consumer would apply them. After every step, each board of the probed
day (daily, weekly, monthly, all-time; every metric) is paged through at the
step's page size and must equal the model: everyone who qualifies, with
their sums, best first, ranked 1..n; so must `scores` in PostgreSQL, and each
user's own row around them. A failure shrinks to a short sequence; keep it as
a plain regression test in test_leaderboard_service.py.

How many sequences and steps: tests/models.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)
from sqlalchemy import text
from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev

from services.kit.auth import Caller
from services.kit.events import envelope
from services.kit.profiles import OwnProfiles
from services.leaderboard import app, domain, store
from services.leaderboard.boards import board_key, totals_key
from tests import event_world
from tests.event_world import NOW, night
from tests.leaderboard_world import leaderboard_settings
from tests.models import StoreMachine, run_model

MODEL_REDIS_DB = 9
USERS = 4
#: Sleep dates from a Sunday in November to a Wednesday in December: weeks and months split.
DAYS = [date(2026, 11, 29) + timedelta(days=i) for i in range(4)]


@dataclass
class Entry:
    state: sev.SleepEntryState
    live: bool = True


class LeaderboardModel(StoreMachine):
    entries = Bundle("entries")

    def __init__(self, loop: asyncio.AbstractEventLoop, dsn: str, redis_url: str):
        super().__init__(loop, dsn, redis_url)
        self.settings = leaderboard_settings()
        self.boards, self.projector = app.parts(self.settings, self.db, self.redis)
        self.reader = app.reader(self.settings, self.db, self.boards, OwnProfiles(None))
        self.entries_: dict[str, Entry] = {}
        self.day, self.size = DAYS[0], 3

    def apply(self, payload, subject: str, copies: int = 1) -> None:
        """One batch holding the event `copies` times (a duplicate in one fetch)."""
        event = envelope(payload, subject, "test")

        async def once():
            async with self.db.transaction() as session:
                await self.projector.apply_batch([(event, payload)] * copies, session)

        self.run(once())

    @initialize(target=entries)
    def people(self):
        """A fresh start (boards are shared by everyone, so no earlier sequence may linger),
        with a night of each user on every day: boards are busy from the first step."""
        self.run(self.redis.flushdb())
        self.users = [str(uuid.uuid4()) for _ in range(USERS)]
        self.ranked = set(self.users)

        async def register():
            async with self.db.transaction() as session:
                await session.execute(text("TRUNCATE scores, score_changes, users, follows"))
                events = []
                for user in self.users:
                    profile = uev.UserProfile(
                        user_id=user, username=f"u{user[:6]}", nights_visible_to="everyone"
                    )
                    events.append((None, uev.UserRegistered(profile=profile)))
                await self.projector.apply_directory(events, session)

        self.run(register())
        made = []
        for i in range(USERS):
            for day in DAYS:
                made.append(self.create(i, day, 4 + (i + day.day) % 6, 1))
        return multiple(*made)

    # -- what happens ------------------------------------------------------------------

    @rule(
        target=entries,
        user=st.integers(0, USERS - 1),
        day=st.sampled_from(DAYS),
        hours=st.integers(4, 10),
        copies=st.integers(1, 2),
    )
    def create(self, user, day, hours, copies):
        state = night(self.users[user], NOW, hours=hours, sleep_date=day)
        self.apply(sev.SleepEntryCreated(entry=state), state.user_id, copies)
        self.entries_[state.entry_id] = Entry(state)
        return state.entry_id

    @rule(
        entry=entries,
        day=st.sampled_from(DAYS),
        hours=st.integers(4, 10),
        copies=st.integers(1, 2),
    )
    def update(self, entry, day, hours, copies):
        old = self.entries_[entry].state
        new = night(old.user_id, NOW, hours=hours, sleep_date=day)
        new.entry_id, new.revision = old.entry_id, old.revision + 1
        self.apply(sev.SleepEntryUpdated(entry=new, previous=old), old.user_id, copies)
        self.entries_[entry].state = new

    @rule(entry=consumes(entries), copies=st.integers(1, 2))
    def delete(self, entry, copies):
        state = self.entries_[entry].state
        self.apply(sev.SleepEntryDeleted(entry=state), state.user_id, copies)
        self.entries_[entry].live = False

    @rule(day=st.sampled_from(DAYS), kind=st.sampled_from(domain.WINDOWS), key=st.integers(0, 3))
    def expire_key(self, day, kind, key):
        """One of a window's keys is gone (evicted, or expired a moment before the others)."""
        window = domain.window_id(kind, day)
        keys = [totals_key(window), *(board_key(m, window) for m in domain.METRICS)]
        self.run(self.redis.delete(keys[key]))

    @rule(day=st.sampled_from(DAYS), kind=st.sampled_from(domain.WINDOWS))
    def expire_window(self, day, kind):
        window = domain.window_id(kind, day)
        keys = [totals_key(window), *(board_key(m, window) for m in domain.METRICS)]
        self.run(self.redis.delete(*keys))

    @rule(user=st.integers(0, USERS - 1), setting=st.sampled_from(["everyone", "followers"]))
    def choose_ranking(self, user, setting):
        """A user starts or stops sharing with everyone: on or off the global boards."""
        user_id = self.users[user]
        profile = uev.UserProfile(
            user_id=user_id, username=f"u{user_id[:6]}", nights_visible_to=setting
        )

        async def apply():
            async with self.db.transaction() as session:
                event = (None, uev.UserProfileUpdated(profile=profile))
                await self.projector.apply_directory([event], session)

        self.run(apply())
        (self.ranked.add if setting == "everyone" else self.ranked.discard)(user_id)

    @rule()
    def flush_redis(self):
        self.run(self.redis.flushdb())

    @rule(day=st.sampled_from(DAYS), size=st.integers(1, 5))
    def probe(self, day, size):
        self.day, self.size = day, size

    # -- what every board must say -----------------------------------------------------

    def expected(self, kind: str, metric: str, everyone=False) -> list[tuple[str, int, int]]:
        """The board's rows: of the ranked users only, unless `everyone`."""
        window = domain.window_id(kind, self.day)
        sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for entry in self.entries_.values():
            day = date.fromisoformat(entry.state.sleep_date)
            if entry.live and window in domain.windows_of(day):
                sums[entry.state.user_id][0] += entry.state.duration.seconds
                sums[entry.state.user_id][1] += 1
        return sorted(
            (user, s, n)
            for user, (s, n) in sums.items()
            if domain.qualifies(metric, kind, domain.Totals(s, n), self.settings.min_nights)
            and (everyone or user in self.ranked)
        )

    async def board(self, kind: str, metric: str):
        caller = Caller(user_id=self.users[0], username="")
        query = await self.reader.query(caller, metric, kind, self.day.isoformat(), "global")
        standings, token = [], ""
        for _ in range(50):
            page = await self.reader.top(caller, query, self.size, token)
            assert len(page.standings) <= self.size
            standings += list(page.standings)
            token = page.next_page_token
            if not token:
                return standings
        raise AssertionError("the pages never ended")

    async def around(self, user: str, kind: str, metric: str):
        caller = Caller(user_id=user, username="")
        query = await self.reader.query(caller, metric, kind, self.day.isoformat(), "global")
        return (await self.reader.around(caller, query, 1)).me

    async def stored(self, kind: str) -> dict[str, tuple[int, int]]:
        async with self.db.transaction() as session:
            scores = await store.window_scores(session, domain.window_id(kind, self.day))
        return {s.user_id: (s.seconds, s.nights) for s in scores}

    @invariant()
    def every_board_of_the_probed_day_equals_the_model(self):
        if not hasattr(self, "users"):
            return
        self.checked()
        for kind in domain.WINDOWS:
            everyone = {u: (s, n) for u, s, n in self.expected(kind, "nights", everyone=True)}
            ranked = {u: (s, n) for u, s, n in self.expected(kind, "nights")}
            assert self.run(self.stored(kind)) == ranked
            for metric in domain.METRICS:
                want = self.expected(kind, metric)
                standings = self.run(self.board(kind, metric))
                got = sorted((s.user_id, s.total_duration.seconds, s.nights) for s in standings)
                assert got == want, f"{metric} {kind} of {self.day}, pages of {self.size}"
                assert [s.rank for s in standings] == list(range(1, len(standings) + 1))
                values = [
                    domain.value(metric, domain.Totals(s.total_duration.seconds, s.nights))
                    for s in standings
                ]
                assert values == sorted(values, reverse=True), "best first"
            me = self.run(self.around(self.users[0], kind, "total-duration"))
            assert (me.total_duration.seconds, me.nights) == everyone.get(self.users[0], (0, 0))


def test_boards_equal_the_model_whatever_happens(blank_database, settings):
    redis_url = event_world.redis_url(settings, MODEL_REDIS_DB)
    run_model(LeaderboardModel, blank_database, app.MIGRATIONS, redis_url)
