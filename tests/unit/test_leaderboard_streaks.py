"""The streak boards' pure rules: runs of nights at the goal, joined and split, and a window's
longest run (services.leaderboard.streaks)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.leaderboard import domain, streaks

D = date(2026, 11, 2)  # a Monday


def day(n: int) -> date:
    return D + timedelta(days=n)


def test_a_night_at_the_goal_joins_the_runs_either_side_of_it():
    runs = [(day(0), day(2)), (day(4), day(5))]
    assert streaks.rerun(runs, day(3), True) == [(day(0), day(5))]
    assert streaks.rerun(runs, day(7), True) == [*runs, (day(7), day(7))]
    assert streaks.rerun(runs, day(6), True) == [(day(0), day(2)), (day(4), day(6))]
    assert streaks.rerun(runs, day(1), True) == runs, "already in a run"


def test_a_night_below_the_goal_splits_the_run_that_held_it():
    runs = [(day(0), day(4))]
    assert streaks.rerun(runs, day(2), False) == [(day(0), day(1)), (day(3), day(4))]
    assert streaks.rerun(runs, day(0), False) == [(day(1), day(4))]
    assert streaks.rerun(runs, day(4), False) == [(day(0), day(3))]
    assert streaks.rerun([(day(0), day(0))], day(0), False) == []
    assert streaks.rerun(runs, day(6), False) == runs


def test_runs_follow_from_dates_and_a_night_meets_the_goal_by_its_sum():
    assert streaks.runs_of([day(3), day(0), day(1), day(1), day(5), day(4)]) == [
        (day(0), day(1)),
        (day(3), day(5)),
    ]
    assert streaks.met(8 * 3600, 2, 8 * 3600) and not streaks.met(8 * 3600 - 1, 1, 8 * 3600)
    assert not streaks.met(9 * 3600, 0, 8 * 3600), "a sum left by deleted nights"


def test_a_windows_streak_is_its_longest_run_clipped_to_it():
    runs = [(day(-3), day(1)), (day(3), day(5))]  # a run across the week's start
    week = streaks.window_dates(domain.window_id("weekly", day(0)))
    assert week == (day(0), day(6))
    assert streaks.longest(runs, *week) == 3, "Monday and Tuesday; then Thursday to Saturday"
    assert streaks.longest(runs, *streaks.window_dates("all-time")) == 5
    assert streaks.longest(runs, *streaks.window_dates(day(2).isoformat())) == 0
    assert streaks.longest([], *week) == 0


def test_a_board_score_gives_back_when_its_value_was_reached():
    when = datetime(2026, 11, 21, 7, 30, 5, tzinfo=UTC)
    score = domain.board_score(12, when)
    assert (domain.value_of(score), domain.reached_of(score)) == (12, when)


def test_the_span_read_covers_every_window_of_the_changed_dates():
    # Sunday 2026-11-29 and Tuesday 2026-12-01: November's and December's months, and the
    # weeks from Monday 2026-11-23 to Sunday 2026-12-06.
    assert streaks.span([date(2026, 11, 29), date(2026, 12, 1)]) == (
        date(2026, 11, 1),
        date(2026, 12, 31),
    )
    assert streaks.span([date(2026, 11, 30)]) == (date(2026, 11, 1), date(2026, 12, 6))
