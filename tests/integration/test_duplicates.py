"""Every consumer group counts an event once, even when its copies arrive in one fetch.

Duplicates are normal here: a relay killed between Kafka's acknowledgement and
its DELETE publishes its batch again (same event ids), and a retried write may
publish the same change under a new id. Each test holds its consumers back
while the copies are published, so they reach the consumer together, as they
do for one that lags, then compares every read model with what happened once.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import timedelta

from confluent_kafka import Producer
from sqlalchemy import text
from zentry.analytics.v1 import product_analytics_service_pb2 as pb
from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev

from services.kit.addresses import kafka_security
from services.kit.auth import Caller
from services.kit.consumer import ConsumerRunner
from services.kit.db import Database, migrate
from services.kit.events import envelope
from services.sleep import app as sleep_app
from services.sleep.projector import Projector
from tests import analytics_world, feed_world, leaderboard_world
from tests.event_world import NOW, ago, ts, world_fixture
from tests.support import eventually_async, unique

DAY = NOW.date()


def twice(world, payload, subject: str) -> None:
    """Publish the event, the same envelope again, and the same change under a new id."""
    event = world.publish(payload, subject)
    world.publish(None, subject, event=event)
    world.publish(payload, subject, event=envelope(payload, subject, "test-retry"))


def profile(user_id: str, name: str) -> uev.UserRegistered:
    """A new account that shares its nights with everyone (ranked on the global boards)."""
    return uev.UserRegistered(
        profile=uev.UserProfile(
            user_id=user_id,
            username=name,
            display_name=name,
            time_zone="UTC",
            nights_visible_to="everyone",
        )
    )


feed = world_fixture(feed_world.FeedWorld, "feed")
boards = world_fixture(leaderboard_world.LeaderboardWorld, "boards")
analytics = world_fixture(analytics_world.AnalyticsWorld, "analytics")


async def test_feed_groups_count_each_event_once(feed):
    ada, bob = feed.user("ada"), feed.user("bob")
    reader = await feed.active_reader(ada)
    async with feed.paused():
        first = feed.entry(ada, ago(30))
        twice(feed, sev.SleepEntryCreated(entry=first), ada)
        twice(feed, uev.FollowCreated(follower_id=reader, followee_id=bob), reader)
        second = feed.entry(bob, ago(20))
        twice(feed, sev.SleepEntryCreated(entry=second), bob)
        gone = feed.entry(ada, ago(10))
        twice(feed, sev.SleepEntryCreated(entry=gone), ada)
        twice(feed, sev.SleepEntryDeleted(entry=gone), ada)
    await feed.settled()

    expected = [second.entry_id, first.entry_id]
    assert await feed.timeline(reader) == expected
    assert await feed.feed(reader, size=1) == expected


async def test_leaderboard_groups_count_each_event_once(boards):
    async with boards.paused():
        ada, bob = str(uuid.uuid4()), str(uuid.uuid4())
        twice(boards, profile(ada, "ada"), ada)
        twice(boards, profile(bob, "bob"), bob)
        night = boards.entry(ada, NOW, hours=8, sleep_date=DAY)
        twice(boards, sev.SleepEntryCreated(entry=night), ada)
        moved = boards.entry(bob, NOW, hours=6, sleep_date=DAY)
        twice(boards, sev.SleepEntryCreated(entry=moved), bob)
        longer = sev.SleepEntryState()
        longer.CopyFrom(moved)
        longer.duration.seconds, longer.revision = 7 * 3600, 2
        twice(boards, sev.SleepEntryUpdated(entry=longer, previous=moved), bob)
        dropped = boards.entry(bob, NOW, hours=5, sleep_date=DAY - timedelta(days=1))
        twice(boards, sev.SleepEntryCreated(entry=dropped), bob)
        twice(boards, sev.SleepEntryDeleted(entry=dropped), bob)
    await boards.settled()

    _window, standings = await boards.board(ada, "total-duration", "all-time")
    assert [(s.username, s.total_duration.seconds, s.nights) for s in standings] == [
        ("ada", 8 * 3600, 1),
        ("bob", 7 * 3600, 1),
    ]
    mine = await boards.around(ada, "nights", "all-time", 1)
    assert mine.me.nights == 1


async def test_analytics_groups_count_each_event_once(analytics):
    at = NOW.replace(minute=0, second=0) - timedelta(hours=2)
    async with analytics.paused():
        user = str(uuid.uuid4())
        twice(analytics, profile(user, "ada"), user)
        night = analytics.entry(user, NOW, hours=8, sleep_date=DAY)
        twice(analytics, sev.SleepEntryCreated(entry=night), user)
        visit = [
            analytics_world.client_event("v1", at, page="/feed", anonymous_id="d1"),
            analytics_world.client_event("v2", at, page="/feed", anonymous_id="d2"),
        ]
        await analytics.track(visit)
        await analytics.track(visit)  # resent by an app that saw no answer
    await analytics.settled()

    span = (DAY - timedelta(days=1)).isoformat(), (DAY + timedelta(days=1)).isoformat()
    stats = await analytics.reader.stats(Caller(user, ""), *span)
    assert stats.nights_logged == 1 and stats.average_duration.seconds == 8 * 3600
    counts = await analytics.reports.event_counts(
        pb.GetEventCountsRequest(
            name="page_view",
            granularity="hour",
            start_time=ts(at - timedelta(hours=1)),
            end_time=ts(at + timedelta(hours=1)),
        )
    )
    assert counts.total == 2


async def test_the_sleep_services_user_directory_counts_each_event_once(
    settings, blank_database, new_topic
):
    await asyncio.to_thread(migrate, blank_database, sleep_app.MIGRATIONS)
    db = Database(blank_database)
    topic, bootstrap = new_topic("sleep-users"), settings.kafka.bootstrap_servers
    producer = Producer({**kafka_security(), "bootstrap.servers": bootstrap})
    user = str(uuid.uuid4())
    moved = uev.UserProfileUpdated(
        profile=uev.UserProfile(user_id=user, username="ada", time_zone="Asia/Tokyo")
    )
    events = []
    for payload in (profile(user, "ada"), moved):
        event = envelope(payload, user, "test")
        events += [event, event, envelope(payload, user, "test-retry")]  # as `twice` does
    for event in events:
        producer.produce(topic, key=user.encode(), value=event.SerializeToString())
    assert producer.flush(30) == 0
    directory = Projector().subscriptions()[0]
    runner = ConsumerRunner(
        db, bootstrap, replace(directory, group=unique("sleep-users"), topics=(topic,))
    )
    task = asyncio.create_task(runner.run())
    try:
        await eventually_async(
            lambda: runner.applied + runner.skipped == len(events), timeout=30, what="all handled"
        )
    finally:
        runner.stop()
        await task
    async with db.transaction() as session:
        rows = (await session.execute(text("SELECT username, time_zone FROM users"))).all()
    await db.dispose()
    assert [tuple(r) for r in rows] == [("ada", "Asia/Tokyo")]
    assert runner.skipped == 2  # the same envelopes again
