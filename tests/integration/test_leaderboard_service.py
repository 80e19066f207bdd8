"""Leaderboards against real Kafka, PostgreSQL and Redis: sleep events in, boards out.

Every test publishes events on topics of its own, lets the real consumers
(the batch runner for sleep events) apply them, and reads boards through the
service's reader. Boards are compared with a recomputation from the nights
that are left after every create, update and delete.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

import pytest
from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev

from services.kit.auth import Caller
from services.kit.errors import InvalidArgument
from services.kit.events import envelope
from services.leaderboard import domain
from tests.event_world import NOW, world_fixture
from tests.leaderboard_world import LeaderboardWorld

MONDAY, SUNDAY, NEXT_MONDAY = date(2026, 11, 16), date(2026, 11, 22), date(2026, 11, 23)
MIN_NIGHTS = domain.parse_min_nights("weekly=2,monthly=2,all-time=2")


world = world_fixture(LeaderboardWorld)


def recompute(nights, metric: str, window: str) -> list[tuple[str, int, int]]:
    """(user, seconds, nights) of everyone on the board, from the nights themselves."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for state in nights:
        if window in domain.windows_of(date.fromisoformat(state.sleep_date)):
            sums[state.user_id][0] += state.duration.seconds
            sums[state.user_id][1] += 1
    kind = domain.kind_of(window)
    return sorted(
        (user, s, n)
        for user, (s, n) in sums.items()
        if domain.qualifies(metric, kind, domain.Totals(s, n), MIN_NIGHTS)
    )


def assert_board_is(standings, expected, metric: str) -> None:
    assert sorted((s.user_id, s.total_duration.seconds, s.nights) for s in standings) == expected
    assert [s.rank for s in standings] == list(range(1, len(standings) + 1))
    values = [
        domain.value(metric, domain.Totals(s.total_duration.seconds, s.nights)) for s in standings
    ]
    assert values == sorted(values, reverse=True), "best first"


async def test_boards_equal_a_recomputation_after_creates_updates_and_deletes(world):
    ada, bob, cy = world.user("ada"), world.user("bob"), world.user("cy")
    live = {}
    for user, day, hours in [
        (ada, MONDAY, 8),
        (ada, SUNDAY, 7),
        (bob, MONDAY, 6),
        (bob, NEXT_MONDAY, 9),
        (cy, SUNDAY, 5),
        (cy, MONDAY, 7.25),
    ]:
        state = world.night(user, day, hours)
        live[state.entry_id] = state
    await world.settled()

    # Ada's Sunday was longer and ended on Monday; Bob's first Monday is deleted.
    ada_sunday = next(s for s in live.values() if s.user_id == ada and s.sleep_date == "2026-11-22")
    moved = sev.SleepEntryState()
    moved.CopyFrom(ada_sunday)
    moved.duration.seconds, moved.sleep_date, moved.revision = 9 * 3600 + 1800, "2026-11-23", 2
    world.publish(sev.SleepEntryUpdated(entry=moved, previous=ada_sunday), ada)
    live[moved.entry_id] = moved
    bob_monday = next(s for s in live.values() if s.user_id == bob and s.sleep_date == "2026-11-16")
    world.publish(sev.SleepEntryDeleted(entry=bob_monday), bob)
    del live[bob_monday.entry_id]
    await world.settled()

    for day in (MONDAY, SUNDAY, NEXT_MONDAY):
        for kind in domain.WINDOWS:
            for metric in domain.METRICS:
                window, standings = await world.board(ada, metric, kind, day.isoformat())
                assert window.id == domain.window_id(kind, day)
                assert_board_is(standings, recompute(live.values(), metric, window.id), metric)
    _, nights = await world.board(ada, "nights", "all-time")
    assert sorted((s.username, s.nights) for s in nights) == [("ada", 2), ("bob", 1), ("cy", 2)]


async def test_equal_values_rank_who_reached_them_first_higher(world):
    users = {name: world.user(name) for name in ("ada", "bob", "cy", "dan", "eve")}
    reached = {"ada": 0, "bob": 30, "cy": 10, "dan": 60, "eve": 60}  # seconds after NOW
    for name, after in reached.items():
        state = world.entry(users[name], NOW, hours=8, sleep_date=MONDAY)
        when = NOW + timedelta(seconds=after)
        world.publish(
            None,
            users[name],
            event=envelope(sev.SleepEntryCreated(entry=state), users[name], "test", when),
        )
    await world.settled()
    _, standings = await world.board(users["ada"], "total-duration", "daily", MONDAY.isoformat())
    order = [s.username for s in standings]
    # Dan and Eve reached it in the same second: then the higher user id, as Redis orders.
    last_two = sorted(["dan", "eve"], key=lambda n: users[n], reverse=True)
    assert order == ["ada", "cy", "bob", *last_two]
    assert [s.rank for s in standings] == [1, 2, 3, 4, 5]


async def test_redelivered_or_republished_events_change_nothing(world):
    ada, bob = world.user("ada"), world.user("bob")
    world.night(ada, MONDAY, 8)
    bobs = world.entry(bob, NOW, sleep_date=MONDAY)
    created = world.publish(sev.SleepEntryCreated(entry=bobs), bob)
    await world.settled()
    before = await world.board(ada, "total-duration", "weekly", MONDAY.isoformat())
    for _ in range(3):  # the same event again, as Kafka may redeliver it
        world.publish(sev.SleepEntryCreated(), bob, event=created)
    world.publish(sev.SleepEntryCreated(entry=bobs), bob)  # and once more under a new event id
    await world.settled()
    assert await world.board(ada, "total-duration", "weekly", MONDAY.isoformat()) == before


async def test_a_day_is_each_users_own_calendar_and_weeks_are_iso_weeks(world):
    tokyo = world.user("tokyo", time_zone="Asia/Tokyo")
    la = world.user("la", time_zone="America/Los_Angeles")
    # Both nights ended "this morning" locally, some 17 hours apart: both count on that day.
    world.night(tokyo, SUNDAY, 7, time_zone="Asia/Tokyo")
    world.night(la, SUNDAY, 6, time_zone="America/Los_Angeles")
    world.night(la, NEXT_MONDAY, 9, time_zone="America/Los_Angeles")  # Monday: the next ISO week
    await world.settled()

    window, daily = await world.board(tokyo, "total-duration", "daily", SUNDAY.isoformat())
    assert [s.username for s in daily] == ["tokyo", "la"]
    assert (window.start_date, window.end_date, window.time_zone) == (
        "2026-11-22",
        "2026-11-22",
        "Asia/Tokyo",
    )
    assert window.start_time.ToDatetime().isoformat() == "2026-11-21T15:00:00"  # Tokyo midnight
    window, weekly = await world.board(la, "total-duration", "weekly", SUNDAY.isoformat())
    assert (window.id, window.start_date, window.end_date) == (
        "2026-W47",
        "2026-11-16",
        "2026-11-22",
    )
    assert window.start_time.ToDatetime().isoformat() == "2026-11-16T08:00:00"  # LA midnight
    assert [(s.username, s.total_duration.seconds) for s in weekly] == [
        ("tokyo", 7 * 3600),
        ("la", 6 * 3600),
    ]
    _, next_week = await world.board(la, "total-duration", "weekly", NEXT_MONDAY.isoformat())
    assert [s.username for s in next_week] == ["la"]


async def test_around_me_at_the_top_the_bottom_and_off_the_board(world):
    users = [world.user(f"u{i}") for i in range(7)]
    for i, user in enumerate(users):
        world.night(user, MONDAY, 10 - i)  # u0 best, u6 last
    stranger = world.user("stranger")
    await world.settled()

    top = await world.around(users[0], "total-duration", "daily", 2, day=MONDAY.isoformat())
    assert [(s.username, s.rank) for s in top.standings] == [("u0", 1), ("u1", 2), ("u2", 3)]
    assert (top.me.username, top.me.rank) == ("u0", 1)
    bottom = await world.around(users[6], "total-duration", "daily", 2, day=MONDAY.isoformat())
    assert [(s.username, s.rank) for s in bottom.standings] == [("u4", 5), ("u5", 6), ("u6", 7)]
    middle = await world.around(users[3], "total-duration", "daily", 1, day=MONDAY.isoformat())
    assert [s.rank for s in middle.standings] == [3, 4, 5]
    off = await world.around(stranger, "total-duration", "daily", 2, day=MONDAY.isoformat())
    assert list(off.standings) == [] and off.me.rank == 0 and off.me.username == "stranger"


async def test_the_following_scope_ranks_the_people_you_follow_and_yourself(world):
    me, friend, other, stranger = (world.user(n) for n in ("me", "friend", "other", "stranger"))
    for user, hours in ((me, 7), (friend, 8), (other, 6), (stranger, 9)):
        world.night(user, MONDAY, hours)
    world.follow(me, friend)
    world.follow(me, other)
    world.follow(me, stranger)
    world.unfollow(me, stranger)
    await world.settled()

    _, standings = await world.board(
        me, "total-duration", "weekly", MONDAY.isoformat(), "following", 2
    )
    assert [(s.username, s.rank) for s in standings] == [("friend", 1), ("me", 2), ("other", 3)]
    around = await world.around(
        me, "total-duration", "weekly", 1, day=MONDAY.isoformat(), scope="following"
    )
    assert (around.me.rank, [s.username for s in around.standings]) == (
        2,
        ["friend", "me", "other"],
    )


async def test_boards_show_only_whom_their_settings_let_them(world):
    """Global boards rank those who share with everyone or opted in; the following scope
    shows the people who let the caller see them; a caller always finds their own standing.
    A change of setting moves a user on or off boards Redis already holds."""
    me = world.user("me", nights_visible_to="followers")
    public = world.user("public")
    opted = world.user("opted", nights_visible_to="onlyMe")
    private = world.user("private", nights_visible_to="onlyMe")
    friend = world.user("friend", nights_visible_to="followers")
    for user, hours in ((me, 7), (public, 8), (opted, 6), (private, 9), (friend, 5)):
        world.night(user, MONDAY, hours)
    for user in (public, opted, private, friend):
        world.follow(me, user)
    world.publish(
        uev.UserProfileUpdated(
            profile=uev.UserProfile(
                user_id=opted,
                username="opted",
                nights_visible_to="onlyMe",
                show_on_global_boards=True,
            )
        ),
        opted,
    )
    await world.settled()

    async def names(scope: str) -> list[str]:
        _, standings = await world.board(me, "total-duration", "weekly", MONDAY.isoformat(), scope)
        return [s.username for s in standings]

    assert await names("global") == ["public", "opted"]
    assert await names("following") == ["public", "me", "opted", "friend"], "not private"
    around = await world.around(me, "total-duration", "weekly", 2, day=MONDAY.isoformat())
    assert (around.me.rank, around.me.total_duration.seconds) == (0, 7 * 3600)
    assert list(around.standings) == [], "not ranked: their own standing, and no one else's"

    # Settings change while the boards are in Redis: public leaves, private joins.
    for user, name, setting in ((public, "public", "followers"), (private, "private", "everyone")):
        profile = uev.UserProfile(user_id=user, username=name, nights_visible_to=setting)
        world.publish(uev.UserProfileUpdated(profile=profile), user)
    await world.settled()
    assert await names("global") == ["private", "opted"]
    assert await names("following") == ["private", "public", "me", "opted", "friend"]


async def test_bad_queries_are_refused_naming_the_field(world):
    user = world.user()
    await world.settled()
    for field, args in [
        ("metric", ("longest", "daily", "", "global")),
        ("window", ("nights", "yearly", "", "global")),
        ("scope", ("nights", "daily", "", "friends")),
        ("date", ("nights", "daily", "22/11/2026", "global")),
    ]:
        with pytest.raises(InvalidArgument, match=f"^{field}: "):
            await world.board(user, *args)
    with pytest.raises(InvalidArgument, match=r"^page_token: "):
        caller = Caller(user, "")
        query = await world.reader.query(caller, "nights", "daily", "", "global")
        await world.reader.top(caller, query, 5, "bm90LWEtdG9rZW4")
