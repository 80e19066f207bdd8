"""A feed service's back end for one test: real PostgreSQL, Redis and Kafka, its own names.

Each world has a database of its own (migrated like the service's), topics of
its own (so its consumer groups read only its events, from the start), its
own consumer groups, and a Redis database index the rest of the suite leaves
alone. Events are published as the user and sleep services publish them:
EventEnvelopes keyed by user id. `settled()` waits until the consumers have
handled everything published so far.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from confluent_kafka import Producer
from google.protobuf import duration_pb2, timestamp_pb2
from redis.asyncio import Redis
from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev

from services.feed import app
from services.feed.config import FeedSettings
from services.feed.domain import Key
from services.feed.reading import FeedPage
from services.feed.timelines import SENTINEL, timeline_key
from services.kit.consumer import ConsumerRunner
from services.kit.db import Database, migrate
from services.kit.events import envelope

TEST_REDIS_DB = 13
NOW = datetime.now(UTC).replace(microsecond=0)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


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


def ts(when: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


@dataclass
class FeedWorld:
    dsn: str
    redis_url: str
    bootstrap: str
    user_topic: str
    sleep_topic: str
    settings: FeedSettings

    async def start(self) -> FeedWorld:
        await asyncio.to_thread(migrate, self.dsn, app.MIGRATIONS)
        self.db = Database(self.dsn)
        self.redis = app.redis_client(self.redis_url)
        self.timelines, self.projector, self.reader = app.parts(self.settings, self.db, self.redis)
        self.groups = (f"{self.user_topic}.graph", f"{self.sleep_topic}.entries")
        self.producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 0})
        self.published = {self.user_topic: 0, self.sleep_topic: 0}
        self.runners: list[ConsumerRunner] = []
        self.tasks: list[asyncio.Task] = []
        self.start_consumers()
        return self

    def start_consumers(self) -> None:
        subscriptions = self.projector.subscriptions(self.user_topic, self.sleep_topic, self.groups)
        self.runners = [
            ConsumerRunner(
                self.db,
                self.bootstrap,
                s,
                first_backoff=0.05,
                max_backoff=0.3,
                extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
            )
            for s in subscriptions
        ]
        self.tasks = [asyncio.create_task(r.run()) for r in self.runners]

    async def stop_consumers(self) -> None:
        for runner in self.runners:
            runner.stop()
        await asyncio.gather(*self.tasks)

    async def close(self) -> None:
        await self.stop_consumers()
        await self.redis.aclose()
        await self.db.dispose()

    # -- publishing, as the user and sleep services do -----------------------------

    def publish(self, payload, subject: str, event=None):
        """Publish `payload` (or re-publish `event` as it was); returns the envelope."""
        event = event or envelope(payload, subject, "test")
        topic = self.sleep_topic if payload.DESCRIPTOR.file is sev.DESCRIPTOR else self.user_topic
        self.producer.produce(topic, key=subject.encode(), value=event.SerializeToString())
        assert self.producer.flush(10) == 0, "Kafka did not take the event"
        self.published[topic] += 1
        return event

    async def settled(self, timeout: float = 30) -> None:
        """Wait until the consumers have handled every event published so far."""
        deadline = time.monotonic() + timeout
        while True:
            handled = [r.applied + r.skipped + r.dead_lettered for r in self.runners]
            wanted = [self.published[self.user_topic], self.published[self.sleep_topic]]
            if handled == wanted:
                return
            for task in self.tasks:
                if task.done():
                    task.result()
            if time.monotonic() > deadline:
                raise AssertionError(f"consumers handled {handled} of {wanted} events")
            await asyncio.sleep(0.05)

    def user(self, name: str = "", display_name: str = "") -> str:
        user_id = str(uuid.uuid4())
        name = name or f"u{user_id[:8]}"
        profile = uev.UserProfile(
            user_id=user_id, username=name, display_name=display_name or name.title()
        )
        self.publish(uev.UserRegistered(profile=profile), user_id)
        return user_id

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

    def follow(self, reader: str, author: str) -> None:
        self.publish(uev.FollowCreated(follower_id=reader, followee_id=author), reader)

    def unfollow(self, reader: str, author: str) -> None:
        self.publish(uev.FollowDeleted(follower_id=reader, followee_id=author), reader)

    def celebrity(self, author: str, celebrity: bool) -> None:
        self.publish(uev.CelebrityStatusChanged(user_id=author, celebrity=celebrity), author)

    def entry(self, author: str, created: datetime, note: str = "") -> sev.SleepEntryState:
        """A night as the sleep service describes it, recorded at `created`."""
        end = created - timedelta(minutes=30)
        start = end - timedelta(hours=7, minutes=30)
        return sev.SleepEntryState(
            entry_id=str(uuid.uuid4()),
            user_id=author,
            start_time=ts(start),
            end_time=ts(end),
            duration=duration_pb2.Duration(seconds=int((end - start).total_seconds())),
            time_zone="UTC",
            sleep_date=end.date().isoformat(),
            quality=4,
            note=note,
            revision=1,
            create_time=ts(created),
            update_time=ts(created),
        )

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


async def open_world(settings, dsn: str, new_topic, url: str | None = None, **overrides):
    """A started FeedWorld on the suite's servers, with topics of its own (`new_topic`)."""
    return await FeedWorld(
        dsn,
        url or redis_url(settings),
        settings.kafka.bootstrap_servers,
        new_topic("feed-users", dead_letters=True),
        new_topic("feed-sleep", dead_letters=True),
        feed_settings(**overrides),
    ).start()


def redis_url(settings) -> str:
    return f"redis://{settings.redis.host}:{settings.redis.port}/{TEST_REDIS_DB}"


async def flush(url: str) -> None:
    client = Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
