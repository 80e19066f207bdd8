"""The boards' update: the arguments Boards.update sends, and its script run in Lua 5.1.

Redis runs scripts in Lua 5.1 (numbers are doubles); here lupa's Lua 5.1 runs
the script over a stand-in for the few Redis commands it calls, so the unit
tier sees the Lua score as domain.py does. tests/integration/
test_leaderboard_scores.py checks the same on a real Redis, with its ordering.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from lupa import lua51

from services.leaderboard import boards, domain
from services.leaderboard.domain import METRICS
from services.leaderboard.store import Score
from tests import leaderboard_inputs as inputs

MIN_NIGHTS = domain.parse_min_nights("")  # daily 1, weekly 3, monthly 7, all-time 14


class StandIn:
    """The Redis commands _UPDATE calls, over dicts; ZADD keeps the score as it was sent."""

    def __init__(self):
        self.hashes: dict[str, dict[str, str]] = defaultdict(dict)
        self.zsets: dict[str, dict[str, str]] = defaultdict(dict)

    def window(self, window_id: str) -> None:
        """The window's keys, each with its sentinel, as Boards.write_window leaves them."""
        keys = boards._keys(window_id)
        self.hashes[keys[0]][boards.SENTINEL] = "0:0"
        for key in keys[1:]:
            self.zsets[key][boards.SENTINEL] = "-inf"

    def call(self, command, key, *args):
        if command == "HEXISTS":
            return int(args[0] in self.hashes.get(key, {}))
        if command == "ZSCORE":
            return self.zsets.get(key, {}).get(args[0], False)
        if command == "HSET":
            self.hashes[key][args[0]] = args[1]
        elif command == "HDEL":
            self.hashes[key].pop(args[0], None)
        elif command == "ZADD":
            self.zsets[key][args[1]] = args[0]
        elif command == "ZREM":
            self.zsets[key].pop(args[0], None)
        elif command == "DEL":
            for each in (key, *args):
                self.hashes.pop(each, None)
                self.zsets.pop(each, None)
        else:
            raise AssertionError(f"_UPDATE calls {command}, which the stand-in lacks")
        return 1

    def update(self, window_id: str, args: list) -> int:
        """Run _UPDATE as Redis would: KEYS and ARGV strings (redis-py sends an int as str)."""
        lua = lua51.LuaRuntime()
        scope = lua.globals()
        scope.KEYS = lua.table_from(boards._keys(window_id))
        scope.ARGV = lua.table_from([str(a) for a in args])
        scope.redis = lua.table_from({"call": self.call})
        return lua.execute(boards._UPDATE)

    def members(self, window_id: str):
        """The window's totals and each board's scores, without the sentinels."""
        keys = boards._keys(window_id)
        totals = {u: t for u, t in self.hashes[keys[0]].items() if u != boards.SENTINEL}
        scores = {
            metric: {u: s for u, s in self.zsets[key].items() if u != boards.SENTINEL}
            for metric, key in zip(METRICS, keys[1:], strict=True)
        }
        return totals, scores


def test_update_args_are_min_nights_then_user_seconds_nights_and_seconds_since_2020():
    reached = datetime(2020, 1, 1, 0, 1, 40, 900_000, tzinfo=UTC)
    changed = [
        Score("2026-W47", "ada", 3600, 2, reached),
        Score("2026-11-22", "bob", 60, 1, reached - timedelta(days=1)),
        Score("2026-W47", "cy", 7200, 3, reached),
    ]
    assert boards.update_args(changed, {"ada", "bob"}, MIN_NIGHTS) == {
        "2026-W47": [3, "ada", 3600, 2, 100, "cy", 0, 0, 0],
        "2026-11-22": [1, "bob", 60, 1, -86_299],
    }
    assert boards.update_args([], {"ada"}, MIN_NIGHTS) == {}


def test_the_update_script_in_lua_5_1_scores_as_domain_does():
    rng = random.Random(20261122)
    for round_ in range(8):
        min_nights = MIN_NIGHTS if round_ < 4 else inputs.random_min_nights(rng)
        for kind, window_id in inputs.WINDOWS.items():
            redis = StandIn()
            redis.window(window_id)
            users = [inputs.user_id(rng) for _ in range(60)]
            updates = []
            for group in (users, rng.sample(users, 30)):  # then some change again
                changed = inputs.scores(rng, window_id, group, min_nights[kind])
                ranked = {s.user_id for s in changed if rng.random() < 0.9}
                args = boards.update_args(changed, ranked, min_nights)[window_id]
                assert redis.update(window_id, args) == 1
                updates.append((changed, ranked))
            want = inputs.expected(updates, min_nights)
            totals, scores = redis.members(window_id)
            assert totals == want.totals
            for metric in METRICS:
                sent = {user: str(score) for user, score in want.boards[metric].items()}
                assert scores[metric] == sent, f"{metric} in {window_id}: the exact digits"


def test_the_script_drops_a_window_missing_a_key_and_writes_nothing():
    redis = StandIn()
    redis.window("2026-11")
    del redis.zsets[boards.board_key("nights", "2026-11")]
    assert redis.update("2026-11", [7, "ada", 3600, 1, 0]) == 0
    assert not redis.hashes and not redis.zsets


def test_the_script_takes_off_who_has_no_nights_left():
    redis = StandIn()
    redis.window("all-time")
    assert redis.update("all-time", [1, "ada", 3600, 1, 5, "bob", 7200, 2, 5]) == 1
    assert redis.update("all-time", [1, "ada", 0, 0, 0]) == 1
    totals, scores = redis.members("all-time")
    assert totals == {"bob": "7200:2"}
    assert all(set(board) == {"bob"} for board in scores.values())
