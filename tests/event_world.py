"""A service's back end for one test: real PostgreSQL, Redis and Kafka, with names of its own.

Each world has a database of its own (migrated like the service's), topics of
its own (so its consumer groups read only its events, from the start), its
own consumer groups, and a Redis database index the rest of the suite leaves
alone, emptied as the world starts. Events are published as the user and
sleep services publish them: EventEnvelopes keyed by user id. `settled()`
waits until the consumers have handled everything published so far.
Subclasses (tests/feed_world.py, tests/leaderboard_world.py,
tests/analytics_world.py) add the service's own parts, its `settings` and
the names of its consumer groups.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import ClassVar, Self

import pytest
from confluent_kafka import Producer
from google.protobuf import duration_pb2, timestamp_pb2
from redis.asyncio import Redis
from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev

from services.kit.addresses import kafka_security
from services.kit.consumer import ConsumerRunner
from services.kit.db import Database, migrate
from services.kit.events import envelope
from services.kit.replay import ReplayReport, ServiceReplay

NOW = datetime.now(UTC).replace(microsecond=0)
#: Quick retries and rebalances for test consumers.
RUNNER_OPTIONS = {
    "first_backoff": 0.05,
    "max_backoff": 0.3,
    "extra_config": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
}


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def ts(when: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def night(
    author: str,
    created: datetime,
    note: str = "",
    *,
    hours: float = 7.5,
    sleep_date: date | None = None,
    time_zone: str = "UTC",
) -> sev.SleepEntryState:
    """A night as the sleep service describes it, recorded at `created`, ending 30 min before.

    `sleep_date` is the night's local date (the sleep service's rule); by default
    the UTC date it ended on.
    """
    end = created - timedelta(minutes=30)
    start = end - timedelta(hours=hours)
    return sev.SleepEntryState(
        entry_id=str(uuid.uuid4()),
        user_id=author,
        start_time=ts(start),
        end_time=ts(end),
        duration=duration_pb2.Duration(seconds=int((end - start).total_seconds())),
        time_zone=time_zone,
        sleep_date=(sleep_date or end.date()).isoformat(),
        quality=4,
        note=note,
        revision=1,
        create_time=ts(created),
        update_time=ts(created),
    )


@dataclass
class EventWorld:
    dsn: str
    redis_url: str
    bootstrap: str
    user_topic: str
    sleep_topic: str

    migrations: Path = Path()
    settings: object = None

    #: What each kind of world declares: its topics' prefix, the database of the
    #: suite's Redis it keeps to, and its service's settings (`overrides` change them).
    topic_prefix: ClassVar[str]
    redis_db: ClassVar[int]
    service_settings: ClassVar[Callable[..., object]]

    @classmethod
    def open(cls, settings, dsn: str, new_topic, url: str | None = None, **overrides) -> Self:
        """A world on the suite's servers, with topics of its own (`new_topic`), and on its
        Redis database unless `url` names another Redis.

        `async with` starts it, and closes it after the block.
        """
        return cls(
            dsn,
            url or settings.redis.url(cls.redis_db),
            settings.kafka.bootstrap_servers,
            new_topic(f"{cls.topic_prefix}-users", dead_letters=True),
            new_topic(f"{cls.topic_prefix}-sleep", dead_letters=True),
            settings=cls.service_settings(**overrides),
        )

    async def start(self):
        await asyncio.to_thread(migrate, self.dsn, self.migrations)
        await flush(self.redis_url)
        self.db = Database(self.dsn)
        self.redis = Redis.from_url(self.redis_url, socket_timeout=1.0, socket_connect_timeout=0.5)
        self.producer = Producer(
            {**kafka_security(), "bootstrap.servers": self.bootstrap, "linger.ms": 0}
        )
        self.published = {self.user_topic: 0, self.sleep_topic: 0}
        self.assemble()
        self.start_consumers()
        return self

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *_exception) -> None:
        await self.close()

    def assemble(self) -> None:
        """Build the service's parts over self.db and self.redis."""
        raise NotImplementedError

    def make_runners(self) -> list[tuple[ConsumerRunner, str]]:
        """Fresh consumer runners, each with the topic it reads."""
        raise NotImplementedError

    def consumer_names(self) -> dict[str, object]:
        """The world's topics and consumer groups (`groups`), as the service's projector
        takes them, and so its consumers and its replay."""
        return {
            "user_topic": self.user_topic,
            "sleep_topic": self.sleep_topic,
            "groups": self.groups,
        }

    async def replay(self, service_replay: ServiceReplay) -> ReplayReport:
        """The service's replay over the world's database, Redis and topics, as `python -m
        services.<name>.replay` runs it; it refuses while the world's consumers run."""
        return await service_replay(
            self.settings,
            dsn=self.dsn,
            redis=self.redis_url,
            bootstrap=self.bootstrap,
            **self.consumer_names(),
        )

    def start_consumers(self) -> None:
        self.counted_from = dict.fromkeys(self.published, 0)
        self.topics_of = self.make_runners()
        self.runners = [runner for runner, _topic in self.topics_of]
        self.tasks = [asyncio.create_task(r.run()) for r in self.runners]

    async def stop_consumers(self) -> None:
        for runner in self.runners:
            runner.stop()
        await asyncio.gather(*self.tasks)

    @asynccontextmanager
    async def paused(self):
        """Consumers stopped for the block, as a lagging consumer would be.

        What was published before is handled and committed first; what the block
        publishes reaches the new consumers after it, in one fetch.
        """
        await self.settled()
        await self.stop_consumers()
        handled = dict(self.published)
        yield
        self.start_consumers()
        self.counted_from = handled

    async def close(self) -> None:
        await self.stop_consumers()
        await self.redis.aclose()
        await self.db.dispose()

    # -- publishing, as the user and sleep services do -----------------------------

    def publish(self, payload, subject: str, event=None):
        """Publish `payload`, or `event` as it is (a redelivery); returns the envelope."""
        event = event or envelope(payload, subject, "test")
        topic = (
            self.sleep_topic
            if event.event_type.startswith("zentry.events.v1.SleepEntry")
            else self.user_topic
        )
        self.producer.produce(topic, key=subject.encode(), value=event.SerializeToString())
        assert self.producer.flush(10) == 0, "Kafka did not take the event"
        self.published[topic] += 1
        return event

    async def settled(self, timeout: float = 30) -> None:
        """Wait until the consumers have handled every event published so far."""
        deadline = time.monotonic() + timeout
        while True:
            handled = [r.applied + r.skipped + r.dead_lettered for r in self.runners]
            wanted = [
                self.published[topic] - self.counted_from.get(topic, 0)
                for _runner, topic in self.topics_of
            ]
            if handled == wanted:
                return
            for task in self.tasks:
                if task.done():
                    task.result()
            if time.monotonic() > deadline:
                raise AssertionError(f"consumers handled {handled} of {wanted} events")
            await asyncio.sleep(0.05)

    def user(
        self,
        name: str = "",
        display_name: str = "",
        time_zone: str = "UTC",
        nights_visible_to: str = "everyone",
    ) -> str:
        """A new account; sharing its nights with everyone unless told otherwise (so that it
        is ranked on the global boards)."""
        user_id = str(uuid.uuid4())
        name = name or f"u{user_id[:8]}"
        profile = uev.UserProfile(
            user_id=user_id,
            username=name,
            display_name=display_name or name.title(),
            time_zone=time_zone,
            nights_visible_to=nights_visible_to,
        )
        self.publish(uev.UserRegistered(profile=profile), user_id)
        return user_id

    def follow(self, reader: str, author: str) -> None:
        self.publish(uev.FollowCreated(follower_id=reader, followee_id=author), reader)

    def unfollow(self, reader: str, author: str) -> None:
        self.publish(uev.FollowDeleted(follower_id=reader, followee_id=author), reader)

    def celebrity(self, author: str, celebrity: bool) -> None:
        self.publish(uev.CelebrityStatusChanged(user_id=author, celebrity=celebrity), author)

    #: A night as the sleep service describes it.
    entry = staticmethod(night)

    def post(self, author: str, minutes_ago: float, note: str = "") -> sev.SleepEntryState:
        state = self.entry(author, ago(minutes_ago), note)
        self.publish(sev.SleepEntryCreated(entry=state), author)
        return state

    def update(self, state: sev.SleepEntryState, note: str) -> sev.SleepEntryState:
        new = sev.SleepEntryState()
        new.CopyFrom(state)
        new.note, new.revision = note, state.revision + 1
        self.publish(
            sev.SleepEntryUpdated(entry=new, previous=state, changed_fields=["note"]), state.user_id
        )
        return new

    def delete(self, state: sev.SleepEntryState) -> None:
        self.publish(sev.SleepEntryDeleted(entry=state), state.user_id)


def redis_url(settings, db: int) -> str:
    return settings.redis.url(db)


def world_fixture(kind: type[EventWorld], name: str = "world"):
    """A pytest fixture named `name`: a world of `kind` started for the test, closed after."""

    async def started(settings, blank_database, new_topic):
        async with kind.open(settings, blank_database, new_topic) as world:
            yield world

    return pytest.fixture(started, name=name)


async def flush(url: str) -> None:
    client = Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
