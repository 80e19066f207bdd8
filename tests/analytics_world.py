"""The analytics service's back end for one test (see tests/event_world.py).

Besides the sleep and user topics, a world has a client-events topic of its
own: `track` sends a batch through the real intake (checks, bot filter,
visitor hash, Kafka append), and the real rollup consumer counts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from google.protobuf import timestamp_pb2
from zentry.analytics.v1 import product_analytics_service_pb2 as pb

from services.analytics import app
from services.analytics.config import AnalyticsSettings
from services.analytics.product.intake import AsyncProducer, Intake, Salts
from services.analytics.product.reports import Reports
from services.analytics.product.tracking import Limits
from services.analytics.product.uniques import Uniques
from services.analytics.stats.reading import SleepStatsReader
from services.kit.auth import Caller
from services.kit.profiles import OwnProfiles
from tests.event_world import RUNNER_OPTIONS, EventWorld

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"


def analytics_settings(**overrides) -> AnalyticsSettings:
    values = {
        "service": None,
        "raw_retention": timedelta(days=30),
        "limits": Limits(),
        "batch_size": 500,
        **overrides,
    }
    return AnalyticsSettings(**values)


@dataclass
class AnalyticsWorld(EventWorld):
    client_topic: str = ""
    settings: AnalyticsSettings = None  # type: ignore[assignment]
    migrations: Path = app.MIGRATIONS
    topic_prefix = "an"
    redis_db = 11
    service_settings = staticmethod(analytics_settings)

    @classmethod
    def open(cls, settings, dsn: str, new_topic, url: str | None = None, **overrides):
        """EventWorld.open, and a client-events topic of its own."""
        world = super().open(settings, dsn, new_topic, url, **overrides)
        world.client_topic = new_topic("an-clients", dead_letters=True)
        return world

    def assemble(self) -> None:
        self.published[self.client_topic] = 0
        # No user service here: zones and goals come from the sleepers copy.
        self.reader = SleepStatsReader(self.db, OwnProfiles(None))
        self.reports = Reports(
            self.db,
            Uniques(self.redis),
            self.settings.raw_retention,
            self.settings.rollup_retention,
        )
        self.intake_producer = AsyncProducer(self.bootstrap, "test-intake", self.client_topic)
        self.intake = Intake(Salts(self.db), self.intake_producer, self.settings.limits)
        self.suffix = f".{self.client_topic}"

    def consumer_names(self) -> dict[str, object]:
        return {
            "sleep_topic": self.sleep_topic,
            "user_topic": self.user_topic,
            "group_suffix": self.suffix,
        }

    def make_runners(self):
        nights, sleepers, rollups = app.consumers(
            self.settings,
            self.db,
            self.redis,
            self.bootstrap,
            client_topic=self.client_topic,
            **self.consumer_names(),
            **RUNNER_OPTIONS,
        )
        return [
            (nights, self.sleep_topic),
            (sleepers, self.user_topic),
            (rollups, self.client_topic),
        ]

    async def close(self) -> None:
        await self.intake_producer.close()
        await super().close()

    async def track(
        self,
        events: list[pb.ClientEvent],
        *,
        caller: Caller | None = None,
        address: str = "203.0.113.7",
        user_agent: str = BROWSER,
    ) -> pb.TrackEventsResponse:
        """TrackEvents as the servicer calls it; the published count follows what was accepted."""
        response = await self.intake.track(
            pb.TrackEventsRequest(events=events), caller, address, user_agent
        )
        self.published[self.client_topic] += response.accepted_count
        return response


def client_event(
    event_id: str, when: datetime, name: str = "page_view", **fields
) -> pb.ClientEvent:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return pb.ClientEvent(event_id=event_id, name=name, event_time=stamp, **fields)
