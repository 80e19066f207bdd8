"""The feed when things go wrong or time passes: Redis flushed or down, readers away, replay.

Redis going down is a real redis-server of the test's own, stopped and started
again on the same port; the suite's shared Redis stays up for everyone else.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import text
from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev

from services.feed import store
from services.feed.replay import ReplayRefused, replay
from services.feed.timelines import entry_key, posts_key
from services.kit.consumer import ConsumerRunner
from services.kit.events import envelope
from tests.event_world import RUNNER_OPTIONS, flush, world_fixture
from tests.feed_world import FeedWorld
from tests.support import eventually_async

world = world_fixture(FeedWorld)


async def test_a_flushed_redis_is_rebuilt_from_the_read_models(world):
    authors = [world.user() for _ in range(3)]
    star = world.star()
    reader = await world.active_reader(*authors, star)
    for minute in range(1, 13):
        world.post(authors[minute % 3] if minute % 4 else star, minute, note=f"night {minute}")
    await world.settled()
    before = await world.page(reader, size=50)

    await flush(world.redis_url)

    after = await world.page(reader, size=50)
    assert after.items == before.items  # entries, notes, authors: all rebuilt
    assert not after.rebuilding
    assert len(await world.timeline(reader)) == 9  # the three ordinary authors' entries


async def test_with_redis_down_reads_come_from_postgres_and_redis_is_used_again_when_back(
    settings, blank_database, new_topic, own_redis
):
    async with FeedWorld.open(settings, blank_database, new_topic, own_redis.url) as world:
        author, reader = world.user("ada"), world.user()
        world.follow(reader, author)
        await world.settled()
        await world.page(reader)
        first = world.post(author, 20)
        await world.settled()

        own_redis.stop()
        page = await world.page(reader)
        assert [i.entry.id for i in page.items] == [first.entry_id]
        assert page.items[0].author.username == "ada"  # hydrated from PostgreSQL too
        entries = world.runners[1]
        tried = entries.retried
        second = world.post(author, 10)
        # PostgreSQL has the entry, so reads show it; the consumer waits for Redis to do
        # the rest instead of letting timelines miss it: not done, not parked.
        await eventually_async(
            lambda: entries.retried > tried, timeout=30, what="the entry's effect was retried"
        )
        assert (entries.applied, entries.dead_lettered) == (1, 0)  # the first entry only
        page = await world.page(reader)
        assert [i.entry.id for i in page.items] == [second.entry_id, first.entry_id]

        own_redis.start()  # back, and empty
        await world.settled()
        await asyncio.sleep(1.1)  # the reader tries Redis again a second after a failure
        page = await world.page(reader)
        assert [i.entry.id for i in page.items] == [second.entry_id, first.entry_id]
        assert await world.timeline(reader) == [second.entry_id, first.entry_id]


async def test_fan_out_skips_inactive_readers_who_get_a_rebuilt_timeline_back(
    settings, blank_database, new_topic
):
    async with FeedWorld.open(
        settings, blank_database, new_topic, inactive_after=timedelta(seconds=1)
    ) as world:
        author, active, away = world.user(), world.user(), world.user()
        for reader in (active, away):
            world.follow(reader, author)
        await world.settled()
        await world.page(away)
        assert await world.timeline(away) == []
        await asyncio.sleep(1.5)  # `away` does not read: their timeline expires
        async with world.db.transaction() as session:  # ... and a month goes by
            await session.execute(
                text(
                    "UPDATE readers SET last_seen = now() - interval '40 days' WHERE user_id = :r"
                ),
                {"r": away},
            )
        await world.page(active)

        entry = world.post(author, 5)
        await world.settled()
        assert world.projector.last_fanout == 1
        assert await world.timeline(away) is None  # not written to, not made partial

        page = await world.page(away)  # back: rebuilt, and active again
        assert [i.entry.id for i in page.items] == [entry.entry_id]
        assert not page.rebuilding
        assert await world.timeline(away) == [entry.entry_id]


async def test_a_read_during_a_slow_rebuild_says_so_and_is_still_complete(
    settings, blank_database, new_topic
):
    async with FeedWorld.open(settings, blank_database, new_topic, rebuild_wait=0.2) as world:
        author, star, reader = world.user(), world.star(), world.user()
        world.follow(reader, author)
        world.follow(reader, star)
        entries = [world.post(author, 20), world.post(star, 10)]
        await world.settled()

        async with world.db.transaction() as session:
            await store.lock_reader(session, reader)  # someone else is rebuilding this reader
            page = await world.page(reader)
            assert page.rebuilding
            assert [i.entry.id for i in page.items] == [e.entry_id for e in reversed(entries)]
            assert await world.timeline(reader) is None

        async def rebuilt():
            return (await world.timeline(reader)) is not None

        for _ in range(50):
            if await rebuilt():
                break
            await asyncio.sleep(0.1)
        page = await world.page(reader)
        assert not page.rebuilding
        assert [i.entry.id for i in page.items] == [e.entry_id for e in reversed(entries)]


async def test_replay_from_the_topics_rebuilds_the_same_feeds(world):
    users = [world.user() for _ in range(6)]
    star = world.user("star")
    for i, reader in enumerate(users):
        world.follow(reader, star)
        world.follow(reader, users[(i + 1) % 6])
        world.follow(reader, users[(i + 2) % 6])
    world.celebrity(star, True)
    posts = [world.post(users[i % 6] if i % 5 else star, 60 - i, f"n{i}") for i in range(30)]
    world.update(posts[3], "edited")
    world.delete(posts[7])
    world.unfollow(users[0], users[1])
    world.celebrity(star, False)
    world.post(star, 1, "after the demotion")
    # One author shares with nobody now: in no feed, before the replay or after it.
    hidden = uev.UserProfile(user_id=users[3], username="hidden", nights_visible_to="onlyMe")
    world.publish(uev.UserProfileUpdated(profile=hidden), users[3])
    await world.settled()
    for reader in users:
        await world.page(reader)
    live = {reader: (await world.page(reader, size=100)).items for reader in users}
    assert all(live.values())
    assert not any(item.entry.user_id == users[3] for items in live.values() for item in items)

    with pytest.raises(ReplayRefused, match=r"running member.*stop them, then replay"):
        await world.replay(replay)
    await world.stop_consumers()
    report = await world.replay(replay)

    assert report.events == sum(world.published.values())
    for reader in users:
        assert await world.timeline(reader) is None  # wiped; rebuilt on the next read
        assert (await world.page(reader, size=100)).items == live[reader]


async def test_an_event_whose_transaction_fails_leaves_nothing_in_redis(world):
    """Its handler did its work, then the transaction failed (as a commit can) until the
    event was parked: PostgreSQL has nothing of it, so neither may any timeline or cache."""
    author = world.user()
    reader = await world.active_reader(author)
    await world.stop_consumers()
    _graph, entries = world.projector.subscriptions(
        world.user_topic, world.sleep_topic, world.groups
    )

    async def fails_after_its_work(events, session):
        await world.projector.apply_entries(events, session)
        raise RuntimeError("the transaction failed after the handler")

    broken = replace(entries, handler=fails_after_its_work)
    runner = ConsumerRunner(world.db, world.bootstrap, broken, max_attempts=2, **RUNNER_OPTIONS)
    task = asyncio.create_task(runner.run())
    parked = world.post(author, 5)
    await eventually_async(lambda: runner.dead_lettered == 1, timeout=30, what="the event parked")
    runner.stop()
    await task

    assert await world.timeline(reader) == []
    assert not await world.redis.exists(entry_key(parked.entry_id), posts_key(author))
    assert (await world.page(reader)).items == []


async def test_a_delete_and_an_unfollow_committed_before_their_effects_leave_no_ghost(world):
    """Found in review: the delete's effect no longer counts the reader a follower, and
    the unfollow's effect found the entry deleted; each left it to the other."""
    author = world.user()
    reader = await world.active_reader(author)
    entry = world.post(author, 5)
    await world.settled()
    assert await world.timeline(reader) == [entry.entry_id]
    await world.stop_consumers()

    deleted = sev.SleepEntryDeleted(entry=entry)
    unfollowed = uev.FollowDeleted(follower_id=reader, followee_id=author)
    steps = [
        (envelope(deleted, author, "test"), deleted, world.projector.on_entry),
        (envelope(unfollowed, reader, "test"), unfollowed, world.projector.on_follow),
    ]
    for event, payload, handle in steps:  # both commit before either touches Redis
        async with world.db.transaction() as session:
            await handle(event, payload, session)
    for event, _payload, _handle in reversed(steps):  # the unfollow's Redis step first
        await world.projector.after_commit([event])

    assert await world.timeline(reader) == []
