"""Random scores for a board's update, and what domain.py says the boards then hold.

The boards' update script scores in Lua what domain.py scores in Python; the
test that holds the two together (tests/integration/test_leaderboard_scores.py,
on a real Redis) draws its inputs here and compares with `expected`.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.leaderboard import domain
from services.leaderboard.domain import METRICS, TIE_SPAN, Totals
from services.leaderboard.store import Score

#: A window of each kind.
WINDOWS = {
    "daily": "2026-11-22",
    "weekly": "2026-W47",
    "monthly": "2026-11",
    "all-time": "all-time",
}
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_SECONDS_EDGES = [0, 1, 59, 60, 61, 3599, 3600, 86_399, 10**7 - 1, 10**7]
#: Beyond 10**7: on either side of where a board's value is clamped (domain.MAX_VALUE).
_CLAMPED = [domain.MAX_VALUE * 60 + 59, (domain.MAX_VALUE + 1) * 60, 2**40]


def user_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128)))


def seconds(rng: random.Random) -> int:
    pick = rng.random()
    if pick < 0.1:
        return rng.choice(_SECONDS_EDGES)
    if pick < 0.12:
        return rng.choice(_CLAMPED)
    if pick < 0.3:
        return rng.randint(0, 600)  # equal values, so ties on value
    return rng.randint(0, 10**7)


def nights(rng: random.Random, min_nights: int) -> int:
    pick = rng.random()
    if pick < 0.1:
        return 0
    if pick < 0.3:
        return rng.choice([1, min_nights - 1, min_nights, min_nights + 1, 1000])
    if pick < 0.7:
        return rng.randint(1, 2 * min_nights + 2)
    return rng.randint(0, 1000)


def reached_at(rng: random.Random, shared: list[datetime]) -> datetime:
    """Before 2020, at it, after it, up to the clamp (TIE_SPAN seconds) and past it; with
    microseconds, and often a moment another user reached too."""
    pick = rng.random()
    if pick < 0.2:
        return rng.choice(shared)
    if pick < 0.3:
        edge = rng.choice([-(10**8), -1, 0, 1, TIE_SPAN - 2, TIE_SPAN - 1, TIE_SPAN, 3 * TIE_SPAN])
        return EPOCH + timedelta(seconds=edge)
    if pick < 0.4:
        before = timedelta(seconds=rng.randint(0, 10**9), microseconds=rng.randint(0, 999_999))
        return EPOCH - before
    if pick < 0.5:
        return EPOCH + timedelta(seconds=rng.randint(TIE_SPAN - 100, 5 * TIE_SPAN))
    return EPOCH + timedelta(
        seconds=rng.randint(0, TIE_SPAN - 1), microseconds=rng.randint(0, 999_999)
    )


def moments(rng: random.Random) -> list[datetime]:
    """A few moments that several users share (ties on the tie-break too)."""
    return [EPOCH + timedelta(seconds=rng.randint(-5, TIE_SPAN + 5)) for _ in range(5)] + [
        EPOCH - timedelta(microseconds=500_000)
    ]


def scores(rng: random.Random, window_id: str, users: list[str], min_nights: int) -> list[Score]:
    shared = moments(rng)
    return [
        Score(window_id, user, seconds(rng), nights(rng, min_nights), reached_at(rng, shared))
        for user in users
    ]


@dataclass(frozen=True)
class Expected:
    totals: dict[str, str]  # user -> "seconds:nights"
    boards: dict[str, dict[str, int]]  # metric -> user -> score
    ranked: list[Score]  # the last score of each user ranked

    def order(self, metric: str) -> list[str]:
        """Best first: higher score, then higher user id (as ZREVRANGE orders equal scores)."""
        board = self.boards[metric]
        return sorted(board, key=lambda user: (board[user], user), reverse=True)


def expected(updates: list[tuple[list[Score], set[str]]], min_nights: dict[str, int]) -> Expected:
    """What a window's totals and boards hold after `updates` (each changed scores and who is
    ranked), by domain.py; the last score of each user counts."""
    last: dict[str, tuple[Score, bool]] = {}
    for changed, ranked in updates:
        for score in changed:
            last[score.user_id] = (score, score.user_id in ranked)
    totals: dict[str, str] = {}
    boards: dict[str, dict[str, int]] = {m: {} for m in METRICS}
    ranked_scores = [score for score, is_ranked in last.values() if is_ranked]
    for score in ranked_scores:
        user = score.user_id
        sums = Totals(score.seconds, score.nights)
        if score.nights > 0:
            totals[user] = f"{score.seconds}:{score.nights}"
        kind = domain.kind_of(score.window_id)
        for metric in METRICS:
            if domain.qualifies(metric, kind, sums, min_nights):
                value = domain.value(metric, sums)
                boards[metric][user] = domain.board_score(value, score.reached_at)
    return Expected(totals, boards, ranked_scores)


def random_min_nights(rng: random.Random) -> dict[str, int]:
    return {kind: rng.choice([1, 2, 3, 7, 14, rng.randint(1, 40)]) for kind in domain.WINDOWS}
