"""The leaderboard service's back end for one test (see tests/event_world.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from zentry.events.v1 import sleep_events_pb2 as sev

from services.kit.auth import Caller
from services.kit.consumer import ConsumerRunner
from services.kit.profiles import OwnProfiles
from services.leaderboard import app
from services.leaderboard.config import LeaderboardSettings
from services.leaderboard.domain import parse_min_nights
from tests.event_world import NOW, RUNNER_OPTIONS, EventWorld


def leaderboard_settings(**overrides) -> LeaderboardSettings:
    values = {
        "service": None,
        "min_nights": parse_min_nights("weekly=2,monthly=2,all-time=2"),
        "retention": timedelta(days=14),
        "batch_size": 500,
        "directory_ttl": 0.0,
        **overrides,
    }
    return LeaderboardSettings(**values)


@dataclass
class LeaderboardWorld(EventWorld):
    settings: LeaderboardSettings = None  # type: ignore[assignment]
    migrations: Path = app.MIGRATIONS
    topic_prefix = "lb"
    redis_db = 12
    service_settings = staticmethod(leaderboard_settings)

    def assemble(self) -> None:
        self.boards, self.projector = app.parts(self.settings, self.db, self.redis)
        # No user service here: the caller's zone comes from the directory's copy.
        self.reader = app.reader(self.settings, self.db, self.boards, OwnProfiles(None))
        self.groups = (f"{self.sleep_topic}.scores", f"{self.user_topic}.directory")

    def make_runners(self):
        scores, directory = self.projector.subscriptions(**self.consumer_names())

        def runner(subscription):
            return ConsumerRunner(
                self.db,
                self.bootstrap,
                subscription,
                max_batch=self.settings.batch_size,
                **RUNNER_OPTIONS,
            )

        return [(runner(scores), self.sleep_topic), (runner(directory), self.user_topic)]

    def night(self, user: str, day: date, hours: float = 8, time_zone: str = "UTC"):
        """A night that counts on `day` (its sleep date), recorded just now."""
        state = self.entry(user, NOW, hours=hours, sleep_date=day, time_zone=time_zone)
        self.publish(sev.SleepEntryCreated(entry=state), user)
        return state

    async def board(
        self, user: str, metric: str, window: str, day: str = "", scope: str = "global", size=7
    ):
        """Every standing of a board, page after page (`size` a page): (window, standings)."""
        caller = Caller(user_id=user, username="")
        query = await self.reader.query(caller, metric, window, day, scope)
        standings, token = [], ""
        while True:
            page = await self.reader.top(caller, query, size, token)
            standings += list(page.standings)
            token = page.next_page_token
            if not token:
                return page.window, standings

    async def around(self, user: str, metric: str, window: str, radius: int, **kw):
        caller = Caller(user_id=user, username="")
        query = await self.reader.query(
            caller, metric, window, kw.get("day", ""), kw.get("scope", "global")
        )
        return await self.reader.around(caller, query, radius)
