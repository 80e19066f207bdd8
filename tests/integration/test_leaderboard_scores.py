"""The boards' update script scores in Lua as domain.py does in Python, on a real Redis.

Thousands of random scores (seconds up to 10**7 and past the value's clamp,
nights 0 to 1,000, reached before 2020, at it, after it and past the clamp),
in a window of each kind and with several minimums of nights, go through
Boards.update; then every board holds exactly the members domain.py puts on
it, each with domain.board_score to the unit, in the order of that score
(ZREVRANGE), the totals are domain's, and the read path's Python ordering
(Boards.rows) is the same.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from services.leaderboard import boards, domain
from services.leaderboard.boards import Boards
from services.leaderboard.domain import METRICS
from tests import leaderboard_inputs as inputs
from tests.event_world import redis_url
from tests.leaderboard_world import LeaderboardWorld

USERS = 300  # a window's users; half of them change again


async def test_lua_and_python_agree_on_scores_boards_and_order(settings):
    rng = random.Random(20261122)
    redis = Redis.from_url(redis_url(settings, LeaderboardWorld.redis_db), socket_timeout=5)
    keys = [key for window_id in inputs.WINDOWS.values() for key in boards._keys(window_id)]
    checked = 0
    try:
        for round_ in range(4):
            default = round_ == 0  # daily 1, weekly 3, monthly 7, all-time 14
            min_nights = domain.parse_min_nights("") if default else inputs.random_min_nights(rng)
            board_set = Boards(redis, min_nights, timedelta(days=1))
            for kind, window_id in inputs.WINDOWS.items():
                await board_set.write_window(window_id, [], datetime.now(UTC))  # empty, whole
                users = [inputs.user_id(rng) for _ in range(USERS)]
                updates = []
                for group in (users, rng.sample(users, USERS // 2)):
                    changed = inputs.scores(rng, window_id, group, min_nights[kind])
                    ranked = {s.user_id for s in changed if rng.random() < 0.9}
                    await board_set.update(changed, ranked)
                    updates.append((changed, ranked))
                    checked += len(changed)
                want = inputs.expected(updates, min_nights)
                await assert_window_is(redis, board_set, window_id, want)
    finally:
        await redis.delete(*keys)
        await redis.aclose()
    assert checked >= 3000


async def assert_window_is(redis, board_set: Boards, window_id: str, want) -> None:
    raw = await redis.hgetall(boards.totals_key(window_id))
    totals = {user.decode(): sums.decode() for user, sums in raw.items()}
    assert totals.pop(boards.SENTINEL) == "0:0"
    assert totals == want.totals
    for metric in METRICS:
        where = f"{metric} in {window_id}"
        rows = await redis.zrevrange(boards.board_key(metric, window_id), 0, -1, withscores=True)
        assert rows[-1] == (boards.SENTINEL.encode(), float("-inf")), where
        got = [(user.decode(), score) for user, score in rows[:-1]]
        assert {user for user, _ in got} == set(want.boards[metric]), f"who is on {where}"
        for user, score in got:
            expected = want.boards[metric][user]
            assert abs(expected) < 2**53, "exact as a double"
            assert (score, int(score)) == (float(expected), expected), f"{user} on {where}"
        order = want.order(metric)
        assert [user for user, _ in got] == order, f"the order of {where}"
        assert [r.user_id for r in board_set.rows(metric, want.ranked)] == order, where
