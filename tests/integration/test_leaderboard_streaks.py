"""Streak boards against real Kafka and PostgreSQL: runs of nights at each sleeper's goal,
joined and split as nights come, change and go, measured again when a goal changes.

Events go through the leaderboard's real consumers; boards are read through the
service's reader, in every scope, a page at a time and around the caller.
"""

from __future__ import annotations

from datetime import date, timedelta

from google.protobuf import duration_pb2
from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev

from tests.event_world import world_fixture
from tests.leaderboard_world import LeaderboardWorld

MONDAY = date(2026, 11, 16)

world = world_fixture(LeaderboardWorld)


def day(n: int) -> date:
    return MONDAY + timedelta(days=n)


def set_goal(world, user: str, name: str, hours: float) -> None:
    profile = uev.UserProfile(
        user_id=user,
        username=name,
        display_name=name.title(),
        time_zone="UTC",
        nights_visible_to="everyone",
        sleep_goal=duration_pb2.Duration(seconds=int(hours * 3600)),
    )
    world.publish(uev.UserProfileUpdated(profile=profile, changed_fields=["sleep_goal"]), user)


async def streaks(world, reader: str, window: str, size: int = 2, **kw) -> list[tuple[str, int]]:
    _window, standings = await world.board(
        reader, "streak", window, day=MONDAY.isoformat(), size=size, **kw
    )
    return [(s.username, s.streak) for s in standings]


async def test_streak_boards_follow_each_sleepers_runs_at_their_goal(world):
    ann, bob, cat = world.user("ann"), world.user("bob"), world.user("cat")
    set_goal(world, bob, "bob", 7)  # before any night: counted by it from the start
    await world.settled()
    ann_nights = {n: world.night(ann, day(n), 6 if n == 2 else 8) for n in range(5)}
    bob_nights = {n: world.night(bob, day(n), 7) for n in range(7)}
    for n in (5, 6, 7, 8):  # across the week's end
        world.night(cat, day(n), 9)
    await world.settled()

    first = await streaks(world, ann, "weekly")
    assert first in ([("bob", 7), ("ann", 2), ("cat", 2)], [("bob", 7), ("cat", 2), ("ann", 2)])
    assert (await streaks(world, ann, "all-time"))[:2] == [("bob", 7), ("cat", 4)]
    daily = await streaks(world, ann, "daily")
    assert sorted(daily) == [("ann", 1), ("bob", 1)], "Monday: cat slept no night yet"

    # Ann's short Wednesday, made eight hours: her two runs become one. Bob's Thursday,
    # deleted: his week splits into three days and three.
    short = ann_nights[2]
    longer = sev.SleepEntryState()
    longer.CopyFrom(short)
    longer.duration.seconds, longer.revision = 8 * 3600, 2
    world.publish(sev.SleepEntryUpdated(entry=longer, previous=short), ann)
    world.publish(sev.SleepEntryDeleted(entry=bob_nights[3]), bob)
    await world.settled()
    assert await streaks(world, ann, "weekly") == [("ann", 5), ("bob", 3), ("cat", 2)]
    assert await streaks(world, ann, "all-time") == [("ann", 5), ("cat", 4), ("bob", 3)]

    # A page at a time and around the caller give the same order, with ranks and sums.
    _w, paged = await world.board(ann, "streak", "weekly", day=MONDAY.isoformat(), size=1)
    assert [(s.rank, s.username) for s in paged] == [(1, "ann"), (2, "bob"), (3, "cat")]
    around = await world.around(bob, "streak", "weekly", 1, day=MONDAY.isoformat())
    assert (around.me.username, around.me.rank, around.me.streak) == ("bob", 2, 3)
    assert around.me.nights == 6 and around.me.total_duration.seconds == 42 * 3600
    assert [s.username for s in around.standings] == ["ann", "bob", "cat"]

    # Ann raises her goal to nine hours: none of her nights meets it any more.
    set_goal(world, ann, "ann", 9)
    await world.settled()
    assert await streaks(world, ann, "weekly") == [("bob", 3), ("cat", 2)]
    mine = await world.around(ann, "streak", "weekly", 1, day=MONDAY.isoformat())
    assert (mine.me.rank, mine.me.streak, mine.me.nights) == (0, 0, 5)

    # The following scope ranks the caller and whom they follow, from the same rows.
    world.follow(cat, bob)
    await world.settled()
    assert await streaks(world, cat, "weekly", scope="following") == [("bob", 3), ("cat", 2)]
