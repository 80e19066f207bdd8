"""The feed's rules against real Kafka, PostgreSQL and Redis: events in, feeds out.

Every test publishes user and sleep events on topics of its own, lets the
real consumers apply them, and reads feeds through the service's reader.
Where it matters whether an entry got into a feed by fan-out (pushed into
the timeline at write) or by fan-in (merged at read), the test also looks at
the reader's Redis timeline itself.
"""

from __future__ import annotations

from sqlalchemy import text
from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev

from services.feed.timelines import timeline_key
from tests.event_world import ago, flush, world_fixture
from tests.feed_world import FeedWorld

world = world_fixture(FeedWorld)


async def readers_with_timelines(world: FeedWorld, *readers: str) -> None:
    """Each reader reads once: active, with a timeline fan-out writes to."""
    for reader in readers:
        await world.page(reader)
        assert await world.timeline(reader) is not None


async def test_fan_out_pushes_an_ordinary_authors_entries_into_each_followers_timeline(world):
    author = world.user("ada", "Ada L.")
    r1, r2, stranger = world.user(), world.user(), world.user()
    world.follow(r1, author)
    world.follow(r2, author)
    await world.settled()
    await readers_with_timelines(world, r1, r2, stranger)

    older = world.post(author, minutes_ago=20, note="slept like a log")
    newer = world.post(author, minutes_ago=10)
    await world.settled()

    assert world.projector.last_fanout == 2  # the two followers' timelines, not the stranger's
    for reader in (r1, r2):
        assert await world.timeline(reader) == [newer.entry_id, older.entry_id]
        page = await world.page(reader)
        assert [i.entry.id for i in page.items] == [newer.entry_id, older.entry_id]
        assert page.next_cursor is None and not page.rebuilding
        first = page.items[1]
        assert (first.author.username, first.author.display_name) == ("ada", "Ada L.")
        assert first.entry.note == "slept like a log"
        assert first.entry.user_id == author
        assert first.entry.duration.seconds == 7.5 * 3600
    assert await world.feed(stranger) == []
    assert await world.feed(author) == []  # a feed shows those you follow, not yourself


async def test_celebrity_entries_are_fanned_in_at_read_and_merged_in_time_order(world):
    star, friend, reader = world.user("star"), world.user("friend"), world.user()
    world.celebrity(star, True)
    world.follow(reader, star)
    world.follow(reader, friend)
    await world.settled()
    await readers_with_timelines(world, reader)

    posts = [
        world.post(star, 50),
        world.post(friend, 40),
        world.post(star, 30),
        world.post(friend, 20),
        world.post(star, 10),
    ]
    await world.settled()

    newest_first = [p.entry_id for p in reversed(posts)]
    assert await world.feed(reader, size=2) == newest_first
    timeline = await world.timeline(reader)
    assert timeline == [posts[3].entry_id, posts[1].entry_id]  # the celebrity's never pushed
    page = await world.page(reader, size=5)
    assert [i.author.username for i in page.items] == ["star", "friend", "star", "friend", "star"]


async def test_follow_backfills_and_unfollow_removes_an_authors_entries(world):
    author, star, reader = world.user(), world.user(), world.user()
    world.celebrity(star, True)
    entries = [world.post(author, minutes) for minutes in (30, 20, 10)]
    star_entry = world.post(star, 15)
    await world.settled()
    await readers_with_timelines(world, reader)
    assert await world.feed(reader) == []

    world.follow(reader, author)
    world.follow(reader, star)
    await world.settled()
    expected = [entries[2].entry_id, star_entry.entry_id, entries[1].entry_id, entries[0].entry_id]
    assert await world.feed(reader) == expected
    assert await world.timeline(reader) == [e.entry_id for e in reversed(entries)]

    world.unfollow(reader, author)
    await world.settled()
    assert await world.feed(reader) == [star_entry.entry_id]
    assert await world.timeline(reader) == []
    world.unfollow(reader, star)
    await world.settled()
    assert await world.feed(reader) == []


async def test_an_author_who_shares_with_nobody_is_in_no_feed_until_they_share_again(world):
    """Hiding (nightsVisibleTo onlyMe) takes an author's entries out of timelines already
    built, out of fan-in, out of rebuilds and the PostgreSQL path; a night recorded while
    hidden goes nowhere; showing again puts everything back."""
    author, star = world.user("ada"), world.star("bo")
    reader = await world.active_reader(author, star)
    before = [world.post(author, 30), world.post(star, 25)]
    await world.settled()
    assert await world.feed(reader) == [before[1].entry_id, before[0].entry_id]

    def share(user: str, name: str, setting: str) -> None:
        """The profile as the user service sends it: the star still a celebrity."""
        profile = uev.UserProfile(
            user_id=user, username=name, nights_visible_to=setting, celebrity=user == star
        )
        world.publish(uev.UserProfileUpdated(profile=profile), user)

    share(author, "ada", "onlyMe")
    share(star, "bo", "onlyMe")
    await world.settled()
    during = world.post(author, 20)
    await world.settled()
    assert await world.timeline(reader) == [], "taken out of the timeline already built"
    assert await world.feed(reader) == []
    await world.redis.delete(timeline_key(reader))  # a rebuild, and the PostgreSQL path
    assert await world.feed(reader) == []
    other = await world.active_reader(author, star)
    assert await world.feed(other) == [], "a new follower's backfill brings nothing"

    share(author, "ada", "followers")
    share(star, "bo", "everyone")
    await world.settled()
    everything = [during.entry_id, before[1].entry_id, before[0].entry_id]
    for someone in (reader, other):
        assert await world.feed(someone) == everything
        assert await world.timeline(someone) == [during.entry_id, before[0].entry_id]


async def test_an_update_is_shown_and_a_delete_disappears_from_every_feed(world):
    author, star = world.user(), world.user()
    readers = [world.user(), world.user()]
    world.celebrity(star, True)
    for reader in readers:
        world.follow(reader, author)
        world.follow(reader, star)
    await world.settled()
    await readers_with_timelines(world, *readers)
    kept, doomed = world.post(author, 20, "first"), world.post(author, 10)
    star_doomed = world.post(star, 5)
    await world.settled()
    for reader in readers:
        assert len(await world.feed(reader)) == 3

    world.update(kept, "edited: woke up twice")
    world.delete(doomed)
    world.delete(star_doomed)
    await world.settled()

    for reader in readers:
        page = await world.page(reader)
        assert [i.entry.id for i in page.items] == [kept.entry_id]
        assert page.items[0].entry.note == "edited: woke up twice"
        assert await world.timeline(reader) == [kept.entry_id]


async def test_promotion_and_demotion_mid_stream_neither_lose_nor_repeat_entries(world):
    author = world.user()
    reader = await world.active_reader(author)

    before = world.post(author, 50)  # ordinary: fanned out
    await world.settled()
    world.celebrity(author, True)
    await world.settled()
    during = world.post(author, 40)  # a celebrity's: fanned in at read
    await world.settled()
    assert await world.timeline(reader) == [before.entry_id]
    assert await world.feed(reader) == [during.entry_id, before.entry_id]

    world.celebrity(author, False)
    await world.settled()
    after = world.post(author, 30)
    await world.settled()
    # Demotion pushed what had not been fanned out; every entry once, in order.
    assert await world.timeline(reader) == [after.entry_id, during.entry_id, before.entry_id]
    assert await world.feed(reader) == [after.entry_id, during.entry_id, before.entry_id]

    # Promoted again, racing an entry on the other topic: whichever is applied first,
    # the timeline keeps what it has, fan-in adds the rest, and a read shows each once.
    world.celebrity(author, True)
    again = world.post(author, 20)
    await world.settled()
    expected = [again.entry_id, after.entry_id, during.entry_id, before.entry_id]
    assert await world.feed(reader, size=3) == expected


async def test_duplicate_and_out_of_order_events_leave_no_duplicate_and_no_ghost(world):
    author = world.user()
    reader = await world.active_reader(author)

    first = world.entry(author, ago(30))
    created = world.publish(sev.SleepEntryCreated(entry=first), author)
    world.publish(sev.SleepEntryCreated(entry=first), author, event=created)  # redelivered
    world.publish(sev.SleepEntryCreated(entry=first), author)  # same entry, new event id
    follow_again = uev.FollowCreated(follower_id=reader, followee_id=author)
    world.publish(follow_again, reader)  # already following

    # An update that overtook its create: the update is the entry's first sight.
    overtaken = world.entry(author, ago(20))
    updated = sev.SleepEntryState()
    updated.CopyFrom(overtaken)
    updated.note, updated.revision = "newer", 2
    world.publish(sev.SleepEntryUpdated(entry=updated, previous=overtaken), author)
    world.publish(sev.SleepEntryCreated(entry=overtaken), author)  # the older revision, late

    # A delete replayed before a stale create: the tombstone wins.
    ghost = world.entry(author, ago(10))
    world.publish(sev.SleepEntryDeleted(entry=ghost), author)
    world.publish(sev.SleepEntryCreated(entry=ghost), author)
    await world.settled()

    page = await world.page(reader)
    assert [i.entry.id for i in page.items] == [overtaken.entry_id, first.entry_id]
    assert page.items[0].entry.note == "newer"
    assert await world.timeline(reader) == [overtaken.entry_id, first.entry_id]


async def test_pages_neither_skip_nor_repeat_while_entries_arrive(world):
    authors = [world.user() for _ in range(3)]
    star = world.star()
    reader = await world.active_reader(*authors, star)
    for minute in range(40, 0, -1):
        world.post(authors[minute % 3] if minute % 4 else star, minute)
    await world.settled()
    snapshot = await world.feed(reader, size=100)
    assert len(snapshot) == 40

    seen, cursor, fresh = [], None, []
    while True:
        page = await world.page(reader, size=6, cursor=cursor)
        seen += [item.entry.id for item in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        # New entries between pages: on top of the feed, above the cursor.
        fresh.append(world.post(authors[len(fresh) % 3], -len(fresh) - 1).entry_id)
        fresh.append(world.post(star, -len(fresh) - 1).entry_id)
        await world.settled()
    assert seen == snapshot
    assert (await world.feed(reader, size=100))[: len(fresh)] == list(reversed(fresh))


async def test_entries_recorded_in_the_same_microsecond_page_without_gaps(world):
    authors = [world.user() for _ in range(3)]
    star = world.star()
    reader = await world.active_reader(*authors, star)
    same_time = ago(5)
    tied = []
    for author in [*authors, star, star, authors[0]]:
        state = world.entry(author, same_time)
        world.publish(sev.SleepEntryCreated(entry=state), author)
        tied.append(state.entry_id)
    world.post(authors[1], 10)
    await world.settled()

    for size in (1, 2, 4):
        ids = await world.feed(reader, size=size)
        assert ids[:6] == sorted(tied, reverse=True)  # equal times: by id, like Redis
        assert len(ids) == 7 == len(set(ids))


async def test_deep_pages_continue_past_the_capped_timeline(settings, blank_database, new_topic):
    async with FeedWorld.open(settings, blank_database, new_topic, timeline_length=10) as world:
        author, star = world.user(), world.star()
        reader = await world.active_reader(author, star)
        posts = [world.post(author if i % 3 else star, 100 - i) for i in range(36)]
        await world.settled()
        timeline = await world.timeline(reader)
        assert len(timeline) == 10  # trimmed to its length
        assert await world.feed(reader, size=7) == [p.entry_id for p in reversed(posts)]


async def test_a_full_timeline_keeps_its_older_pages_after_a_delete_and_an_unfollow(
    settings, blank_database, new_topic
):
    async with FeedWorld.open(settings, blank_database, new_topic, timeline_length=5) as world:
        ada, bob = world.user(), world.user()
        reader = await world.active_reader(ada, bob)
        posts = [world.post(ada if i % 2 else bob, 100 - i) for i in range(12)]
        await world.settled()
        assert len(await world.timeline(reader)) == 5  # full: older entries were trimmed

        world.delete(posts[-1])  # the newest: the timeline is no longer full
        await world.settled()
        assert len(await world.timeline(reader)) == 4
        kept = list(reversed(posts[:-1]))
        assert await world.feed(reader, size=3) == [p.entry_id for p in kept]

        world.unfollow(reader, bob)
        await world.settled()
        adas = [p.entry_id for p in kept if p.user_id == ada]
        for size in (1, 2, 5, 100):
            assert await world.feed(reader, size=size) == adas


async def test_a_demotion_puts_back_what_a_rebuild_left_out(world):
    """Found by the model test: the entry was fanned out before the promotion, the timeline
    was rebuilt without it while its author was a celebrity, and the demotion pushed only
    entries never fanned out."""
    author = world.user()
    reader = await world.active_reader(author)
    before = world.post(author, 30)
    await world.settled()
    world.celebrity(author, True)
    await world.settled()
    await flush(world.redis_url)
    assert await world.feed(reader) == [before.entry_id]  # rebuilt: fanned in now

    world.celebrity(author, False)
    await world.settled()
    assert await world.timeline(reader) == [before.entry_id]
    assert await world.feed(reader) == [before.entry_id]


async def test_a_rebuild_for_a_reader_following_sixty_thousand_accounts(world):
    """Found by reading: a rebuild took one advisory lock per followed account, and tens of
    thousands filled PostgreSQL's lock table (64 a connection) for every database on the
    server. Follows are capped in the user service now, but the feed must not depend on it."""
    author = world.user()
    reader = await world.active_reader(author)
    night = world.post(author, 30)
    await world.settled()
    async with world.db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO follows (follower_id, followee_id) "
                "SELECT :reader, gen_random_uuid() FROM generate_series(1, 60000)"
            ),
            {"reader": reader},
        )
    await flush(world.redis_url)
    assert await world.feed(reader) == [night.entry_id]
    assert await world.timeline(reader) == [night.entry_id], "the rebuild failed"
