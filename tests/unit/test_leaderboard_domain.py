"""The leaderboards' pure rules: windows in each user's calendar, deltas, and board order."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.leaderboard import domain
from services.leaderboard.domain import Totals
from services.leaderboard.reading import window_view


def test_a_sleep_date_counts_in_its_day_iso_week_month_and_all_time():
    assert domain.windows_of(date(2026, 11, 22)) == (
        "2026-11-22",
        "2026-W47",
        "2026-11",
        "all-time",
    )
    # ISO weeks start on Monday, and the first days of January can belong to last year's week 53.
    assert domain.window_id("weekly", date(2026, 11, 23)) == "2026-W48"
    assert domain.window_id("weekly", date(2021, 1, 3)) == "2020-W53"
    for window in ("2026-11-22", "2026-W47", "2026-11", "2020-W53"):
        kind = domain.kind_of(window)
        assert domain.window_id(kind, domain.day_of(window)) == window
    assert domain.first_and_last_day("weekly", date(2021, 1, 3)) == (
        date(2020, 12, 28),
        date(2021, 1, 3),
    )
    assert domain.first_and_last_day("monthly", date(2024, 2, 10)) == (
        date(2024, 2, 1),
        date(2024, 2, 29),
    )
    assert domain.first_and_last_day("all-time", date(2024, 2, 10)) is None


def test_an_update_moves_only_what_changed_and_a_delete_takes_away():
    sunday, monday = date(2026, 11, 22), date(2026, 11, 23)
    created = domain.deltas((sunday, 8 * 3600), None)
    assert created == {w: (8 * 3600, 1) for w in domain.windows_of(sunday)}
    moved = domain.deltas((monday, 9 * 3600), (sunday, 8 * 3600))
    assert moved == {
        "2026-11-22": (-8 * 3600, -1),
        "2026-W47": (-8 * 3600, -1),
        "2026-11-23": (9 * 3600, 1),
        "2026-W48": (9 * 3600, 1),
        "2026-11": (3600, 0),
        "all-time": (3600, 0),
    }
    assert domain.deltas((sunday, 100), (sunday, 100)) == {}, "a note changed: no score did"
    assert domain.deltas(None, (sunday, 100))["2026-11-22"] == (-100, -1)


def test_board_order_is_value_then_who_reached_it_first_and_exact():
    early, late = datetime(2026, 11, 22, 7, tzinfo=UTC), datetime(2026, 11, 22, 9, tzinfo=UTC)
    assert domain.board_score(481, late) > domain.board_score(480, early)
    assert domain.board_score(480, early) > domain.board_score(480, late)
    top = domain.board_score(domain.MAX_VALUE, datetime(2020, 1, 1, tzinfo=UTC))
    assert top < 2**53 and float(top) == top
    assert domain.value_of(domain.board_score(480, late)) == 480


def test_seconds_since_2020_are_whole_toward_zero_and_clamped_only_in_the_score():
    epoch = datetime(2020, 1, 1, tzinfo=UTC)
    half = timedelta(microseconds=500_000)
    assert [domain.since_epoch(epoch + d) for d in (-half, timedelta(0), half)] == [0, 0, 0]
    assert domain.since_epoch(epoch - timedelta(seconds=3) - half) == -3
    far = epoch + timedelta(seconds=domain.TIE_SPAN + 5)
    assert domain.since_epoch(far) == domain.TIE_SPAN + 5
    span = domain.TIE_SPAN
    assert domain.board_score(2, far) == 2 * span  # reached "at the clamp", the latest
    assert domain.board_score(2, epoch - timedelta(days=9)) == 3 * span - 1  # the earliest
    assert domain.board_score(domain.MAX_VALUE + 9, epoch) == domain.MAX_VALUE * span + span - 1


def test_values_and_who_qualifies():
    week = Totals(seconds=3 * 8 * 3600 + 90, nights=3)
    assert domain.value("total-duration", week) == 24 * 60 + 1
    assert domain.value("nights", week) == 3
    assert domain.value("average-duration", week) == 8 * 60
    minimum = domain.parse_min_nights("weekly=4")
    assert not domain.qualifies("average-duration", "weekly", week, minimum)
    assert domain.qualifies("total-duration", "weekly", week, minimum)
    assert not domain.qualifies("nights", "daily", Totals(0, 0), minimum)
    with pytest.raises(ValueError, match="window=nights"):
        domain.parse_min_nights("yearly=3")


def test_the_current_window_is_today_in_the_callers_zone():
    now = datetime(2026, 11, 22, 20, 30, tzinfo=UTC)  # Monday 05:30 in Tokyo, Sunday in LA
    tokyo = window_view("daily", "", "Asia/Tokyo", now)
    la = window_view("daily", "", "America/Los_Angeles", now)
    assert (tokyo.id, la.id) == ("2026-11-23", "2026-11-22")
    assert tokyo.current and la.current
    assert tokyo.end_time.ToDatetime().isoformat() == "2026-11-23T15:00:00"  # Tokyo's next midnight
    this_week = window_view("weekly", "2026-11-16", "America/Los_Angeles", now)
    assert (this_week.id, this_week.current) == ("2026-W47", True)
    assert not window_view("monthly", "2026-10-31", "UTC", now).current
