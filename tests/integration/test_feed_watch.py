"""Watching a feed against real Kafka and PostgreSQL: the changes of a reader's authors, in
commit order, once each, resumable from a cursor on another instance (services.feed.watching).

Events go through the feed's real consumers; each test runs EntryChanges as the
feed's API instances do (two of them where a stream moves from one to another).
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from zentry.events.v1 import sleep_events_pb2 as sev

from services.feed import watching
from services.feed.watching import EntryChanges, Watch
from services.kit.errors import ResourceExhausted, Unavailable
from tests.event_world import world_fixture
from tests.feed_world import FeedWorld

world = world_fixture(FeedWorld)


@contextlib.asynccontextmanager
async def instance(world):
    """One API instance's EntryChanges, running."""
    changes = EntryChanges(world.db, interval=0.2)
    task = asyncio.create_task(changes.run())
    try:
        yield changes
    finally:
        changes.stop()
        await task


async def take(watch: Watch, count: int, timeout: float = 10) -> list:
    """The next `count` messages the watcher would be sent."""
    messages = []
    while len(messages) < count:
        got = await asyncio.wait_for(watch.queue.get(), timeout)
        assert got is not None, "reset: the watcher fell behind"
        if got != watching.REFOLLOW:
            messages.append(watching.message(*got, watch.reader_id))
    return messages


def shown(messages) -> list[tuple[str, str]]:
    return [
        ("removed", m.removed_entry_id) if m.removed_entry_id else ("item", m.item.entry.id)
        for m in messages
    ]


async def test_a_watcher_gets_each_change_of_its_authors_once(world):
    alice, star, stranger = world.user("alice"), world.star("star"), world.user()
    reader = world.user()
    world.follow(reader, alice)
    world.follow(reader, star)
    await world.settled()
    async with instance(world) as changes:
        watch = await changes.join(reader, None, 256)
        first = world.post(alice, 5)
        world.post(stranger, 4)
        await world.settled()
        [item] = await take(watch, 1)
        assert shown([item]) == [("item", first.entry_id)]
        assert (item.item.author.username, item.item.author.display_name) == ("alice", "Alice")
        celebrity = world.post(star, 3)  # fanned in by readers, never pushed: here too
        changed = world.update(first, "woke at six")
        await world.settled()
        world.delete(celebrity)
        await world.settled()
        messages = await take(watch, 3)
        assert shown(messages) == [
            ("item", celebrity.entry_id),
            ("item", first.entry_id),
            ("removed", celebrity.entry_id),
        ] or shown(messages) == [
            ("item", first.entry_id),
            ("item", celebrity.entry_id),
            ("removed", celebrity.entry_id),
        ], "one batch's changes may come in either order, a later batch's after"
        assert next(m for m in messages if m.item.entry.id == first.entry_id).item.entry.note == (
            changed.note
        )
        stale = world.publish(sev.SleepEntryCreated(entry=first), first.user_id)  # revision 1
        world.publish(None, first.user_id, event=stale)  # and delivered twice
        await world.settled()
        await asyncio.sleep(0.5)
        assert watch.queue.empty(), "a redelivered or stale event changes no row: nothing sent"


async def test_a_stream_resumes_on_another_instance_from_its_cursor(world):
    author, reader = world.user(), world.user()
    world.follow(reader, author)
    await world.settled()
    async with instance(world) as first:
        watch = await first.join(reader, None, 256)
        seen = world.post(author, 9)
        await world.settled()
        [message] = await take(watch, 1)
        assert message.item.entry.id == seen.entry_id
        first.leave(watch)  # the connection is lost, or its instance killed
    missed = [world.post(author, 8 - n) for n in range(3)]
    await world.settled()
    world.delete(missed[0])
    await world.settled()
    async with instance(world) as second:
        cursor = watching.decode_cursor(message.cursor, reader)
        resumed = await second.join(reader, cursor, 256)
        later = world.post(author, 1)
        await world.settled()
        got = shown(await take(resumed, 4))
        # Each entry as it stands now, where it last changed: the one deleted meanwhile only
        # as its removal (which a client that never had it ignores).
        assert set(got[:2]) == {("item", m.entry_id) for m in missed[1:]}
        assert got[2:] == [("removed", missed[0].entry_id), ("item", later.entry_id)]
        await asyncio.sleep(0.5)
        assert resumed.queue.empty(), "nothing twice"
        assert ("item", seen.entry_id) not in got


async def test_a_watcher_too_slow_to_keep_up_is_reset(world):
    author, reader = world.user(), world.user()
    world.follow(reader, author)
    await world.settled()
    async with instance(world) as changes:
        watch = await changes.join(reader, None, queue_size=3)
        for n in range(6):
            world.post(author, 10 - n)
            await world.settled()
        await asyncio.sleep(0.5)
        assert watch.behind
        assert watch.queue.qsize() == 1 and watch.queue.get_nowait() is None, "nothing held"


async def test_a_new_follow_is_noticed_at_once_and_a_cursor_of_another_reader_is_refused(world):
    author, other, reader = world.user(), world.user(), world.user()
    world.follow(reader, author)
    await world.settled()
    async with instance(world) as changes:
        watch = await changes.join(reader, None, 256)
        assert not await changes.refollow(watch)
        world.follow(reader, other)
        await world.settled()
        # The projector's notification reaches the watcher, which reads its follows again.
        assert await asyncio.wait_for(watch.queue.get(), 10) == watching.REFOLLOW
        assert await changes.refollow(watch)
        entry = world.post(other, 1)
        await world.settled()
        assert shown(await take(watch, 1)) == [("item", entry.entry_id)]
        stranger_cursor = watching.encode_cursor(changes.position, other)
    with pytest.raises(Exception, match="cursor"):
        watching.decode_cursor(stranger_cursor, reader)


async def test_watchers_past_the_instances_bounds_are_refused(world):
    reader, other, third = world.user(), world.user(), world.user()
    await world.settled()
    changes = EntryChanges(world.db, max_watchers=2, per_reader=1)
    task = asyncio.create_task(changes.run())
    try:
        first = await changes.join(reader, None, 8)
        with pytest.raises(
            ResourceExhausted, match=r"as many streams open as one reader may \(1\)"
        ):
            await changes.join(reader, None, 8)
        await changes.join(other, None, 8)
        with pytest.raises(ResourceExhausted, match="as many feeds as it can"):
            await changes.join(third, None, 8)
        changes.leave(first)
        assert changes.watchers == 1
        await changes.join(third, None, 8)
    finally:
        changes.stop()
        await task


async def test_a_watcher_is_told_to_come_back_while_the_changes_cannot_be_read(world, monkeypatch):
    reader = world.user()
    await world.settled()
    monkeypatch.setattr(watching, "READY_WAIT", 0.2)
    changes = EntryChanges(world.db)  # never reads: as when PostgreSQL was away since start
    with pytest.raises(Unavailable, match="cannot be watched right now"):
        await changes.join(reader, None, 8)
    assert changes.watchers == 0
