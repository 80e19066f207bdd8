"""Leaderboards when Redis loses them, goes down, lets them expire, or the log is replayed."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev

from services.kit.replay import ReplayRefused
from services.leaderboard import domain
from services.leaderboard.boards import board_key, totals_key
from services.leaderboard.replay import replay
from tests.event_world import flush, world_fixture
from tests.leaderboard_world import LeaderboardWorld

MONDAY, THURSDAY = date(2026, 11, 16), date(2026, 11, 19)


world = world_fixture(LeaderboardWorld)


async def every_board(world: LeaderboardWorld, user: str) -> dict:
    """Every metric over every window kind around MONDAY, and all-time: the standings."""
    out = {}
    for kind in domain.WINDOWS:
        for metric in domain.METRICS:
            _window, standings = await world.board(user, metric, kind, MONDAY.isoformat())
            out[(kind, metric)] = [(s.user_id, s.rank, s.total_duration.seconds) for s in standings]
    return out


def populate(world: LeaderboardWorld) -> list[str]:
    users = [world.user(f"u{i}") for i in range(5)]
    for i, user in enumerate(users):
        world.night(user, MONDAY, 6 + i)
        world.night(user, THURSDAY, 9 - i / 2)
    doomed = world.night(users[0], date(2026, 11, 20), 4)
    world.publish(sev.SleepEntryDeleted(entry=doomed), users[0])
    return users


async def test_a_flushed_board_is_rebuilt_the_same(world):
    users = populate(world)
    await world.settled()
    before = await every_board(world, users[0])
    assert before[("weekly", "total-duration")], "the weekly board has people on it"

    await flush(world.redis_url)

    assert await every_board(world, users[0]) == before
    assert await world.redis.exists(board_key("nights", domain.window_id("weekly", MONDAY)))


async def test_with_redis_down_boards_come_from_postgres_and_redis_is_used_when_back(
    settings, blank_database, new_topic, own_redis
):
    async with LeaderboardWorld.open(settings, blank_database, new_topic, own_redis.url) as world:
        users = populate(world)
        await world.settled()
        before = await every_board(world, users[0])
        around = await world.around(users[2], "total-duration", "weekly", 1, day=MONDAY.isoformat())

        own_redis.stop()
        assert await every_board(world, users[0]) == before
        down = await world.around(users[2], "total-duration", "weekly", 1, day=MONDAY.isoformat())
        assert down == around

        own_redis.start()  # back, and empty
        await asyncio.sleep(1.1)  # the reader tries Redis again a second after a failure
        assert await every_board(world, users[0]) == before
        assert await world.redis.exists(totals_key(domain.window_id("daily", MONDAY)))


async def test_past_windows_expire_after_the_retention_and_all_time_never(world):
    users = populate(world)
    await world.settled()
    await every_board(world, users[0])
    daily = board_key("total-duration", domain.window_id("daily", MONDAY))
    retention = world.settings.retention.total_seconds()
    ttl = await world.redis.ttl(daily)
    # MONDAY is in the past: kept `retention` after it has ended in every zone, at most.
    assert 0 < ttl <= retention + 3 * 86400
    assert await world.redis.ttl(board_key("total-duration", domain.ALL_TIME)) == -1
    await world.redis.delete(daily)  # as the expiry would
    _window, standings = await world.board(users[0], "total-duration", "daily", MONDAY.isoformat())
    assert len(standings) == 5


async def test_replay_from_the_topics_ends_with_the_same_boards(world):
    users = populate(world)
    world.follow(users[0], users[1])
    # One leaves the global boards, after its scores were on them.
    left = uev.UserProfile(user_id=users[2], username="left", nights_visible_to="followers")
    world.publish(uev.UserProfileUpdated(profile=left), users[2])
    await world.settled()
    before = await every_board(world, users[0])
    assert not any(row[0] == users[2] for rows in before.values() for row in rows)
    following = await world.board(users[0], "nights", "all-time", scope="following")

    with pytest.raises(ReplayRefused):
        await world.replay(replay)
    await world.stop_consumers()
    report = await world.replay(replay)

    assert report.events == sum(world.published.values())
    assert not await world.redis.exists(totals_key(domain.ALL_TIME))  # wiped; rebuilt when asked
    assert await every_board(world, users[0]) == before
    assert await world.board(users[0], "nights", "all-time", scope="following") == following


async def test_a_window_that_lost_one_of_its_keys_is_rebuilt_whole(world):
    """Found by the model test: with its totals gone a board showed everyone at 0:0, and a
    board gone alone came back holding only the users updated since."""
    users = populate(world)
    await world.settled()
    before = await every_board(world, users[0])
    window = domain.window_id("weekly", MONDAY)

    await world.redis.delete(totals_key(window))
    assert await every_board(world, users[0]) == before

    await world.redis.delete(board_key("total-duration", window))
    world.night(users[4], date(2026, 11, 17), 1)  # one user changes while the board is gone
    await world.settled()
    _window, standings = await world.board(users[0], "total-duration", "weekly", "2026-11-16")
    assert len(standings) == 5
    changed = next(s for s in standings if s.user_id == users[4])
    assert (changed.total_duration.seconds, changed.nights) == ((10 + 7 + 1) * 3600, 3)
