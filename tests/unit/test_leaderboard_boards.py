"""The arguments Boards.update sends its script (tests/integration/
test_leaderboard_scores.py runs the script on a real Redis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.leaderboard import boards, domain
from services.leaderboard.store import Score

MIN_NIGHTS = domain.parse_min_nights("")  # daily 1, weekly 3, monthly 7, all-time 14


def test_update_args_are_min_nights_then_a_user_seconds_nights_and_seconds_since_2020_each():
    reached = datetime(2020, 1, 1, 0, 1, 40, 900_000, tzinfo=UTC)
    changed = [
        Score("2026-W47", "ada", 3600, 2, reached),
        Score("2026-11-22", "bob", 60, 1, reached - timedelta(days=1)),
        Score("2026-W47", "cy", 7200, 3, reached),
    ]
    assert boards.update_args(changed, {"ada", "bob"}, MIN_NIGHTS) == {
        "2026-W47": [3, "ada 3600 2 100", "cy 0 0 0"],
        "2026-11-22": [1, "bob 60 1 -86299"],
    }
    assert boards.update_args([], {"ada"}, MIN_NIGHTS) == {}
