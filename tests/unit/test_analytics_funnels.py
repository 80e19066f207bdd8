"""Funnels and retention cohorts: the pure rules (product/funnels.py and product/cohorts.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.analytics.product import cohorts, funnels
from services.kit.errors import InvalidArgument

MINUTE = 60 * funnels.SECOND
HOUR = 60 * MINUTE
STEPS = ["view", "signup", "first_night"]
RANGE = (0, 24 * HOUR)  # the first step may happen in [0, 24 h)


def got(events: list[tuple[str, float]], steps=STEPS, window=HOUR, bounds=RANGE):
    """The journey of one subject whose events are (name, minutes) pairs, in any order."""
    times: dict[str, list[int]] = {}
    for name, minutes in sorted(events, key=lambda e: e[1]):
        times.setdefault(name, []).append(int(minutes * MINUTE))
    return [t / MINUTE for t in funnels.journey(steps, times, window, *bounds)]


# Funnels: who reaches which step


def test_steps_in_order_within_the_window_reach_the_end():
    assert got([("view", 0), ("signup", 5), ("first_night", 50)]) == [0, 5, 50]


def test_skipping_a_step_stops_the_funnel_there():
    assert got([("view", 0), ("first_night", 10)]) == [0]
    assert got([("signup", 1), ("first_night", 2)]) == []  # never took the first step


def test_a_step_before_the_previous_one_does_not_count():
    assert got([("signup", 0), ("view", 5), ("first_night", 10)]) == [5]


def test_going_back_neither_double_counts_nor_reaches_a_step_not_taken():
    # view, signup, view again, first night: the first attempt goes all the way
    assert got([("view", 0), ("signup", 5), ("view", 7), ("first_night", 9)]) == [0, 5, 9]
    # all three events happened, but the first night came before the signup
    assert got([("view", 0), ("first_night", 3), ("signup", 5), ("view", 7)]) == [0, 5]


def test_repeating_a_step_counts_once_and_a_later_attempt_may_get_further():
    events = [("view", 0), ("view", 1), ("signup", 90), ("view", 100), ("signup", 101)]
    events.append(("first_night", 130))
    # from 0 or 1 the signup at 90 is outside the hour; from 100: signup at 101, night at 130
    assert got(events) == [100, 101, 130]
    journey = tuple(int(m * MINUTE) for m in got(events))
    assert [f.reached for f in funnels.summarize(STEPS, [journey])] == [1, 1, 1]


def test_the_window_counts_from_the_first_step_and_includes_its_edge():
    assert got([("view", 0), ("signup", 30), ("first_night", 60)]) == [0, 30, 60]
    assert got([("view", 0), ("signup", 30), ("first_night", 60.01)]) == [0, 30]


def test_only_first_steps_in_the_range_start_an_attempt_but_later_steps_may_follow_it():
    day = 24 * 60
    assert got([("view", -1), ("signup", 5), ("first_night", 6)]) == []
    assert got([("view", day - 1), ("signup", day + 5), ("first_night", day + 6)]) == [
        day - 1,
        day + 5,
        day + 6,
    ]
    assert got([("view", day), ("signup", day + 5)]) == []


def test_a_repeated_step_name_needs_another_event_at_or_after_the_previous():
    steps = ["view", "view", "signup"]
    assert got([("view", 0), ("signup", 1)], steps) == [0]
    assert got([("view", 0), ("view", 0), ("signup", 1)], steps) == [0, 0, 1]
    assert got([("view", 0), ("view", 3), ("signup", 1), ("signup", 4)], steps) == [0, 3, 4]


def test_ties_count_as_in_order():
    assert got([("view", 5), ("signup", 5), ("first_night", 5)]) == [5, 5, 5]


def test_the_times_between_steps_are_those_of_the_earliest_furthest_attempt():
    events = [("view", 0), ("signup", 20), ("view", 30), ("signup", 31)]
    assert got(events) == [0, 20]  # both attempts reach signup: the first one counts


def deepest(steps, events, window, start, end) -> int:
    """Brute force: the most steps any choice of distinct events reaches, by the rule."""

    def go(k: int, previous: int, first: int, used: frozenset) -> int:
        if k == len(steps):
            return 0
        options = [
            (i, t)
            for i, (name, t) in enumerate(events)
            if name == steps[k] and i not in used and previous <= t <= first + window
        ]
        return max((1 + go(k + 1, t, first, used | {i}) for i, t in options), default=0)

    starts = [(i, t) for i, (name, t) in enumerate(events) if name == steps[0] and start <= t < end]
    return max((1 + go(1, t, t, frozenset({i})) for i, t in starts), default=0)


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(
    steps=st.lists(st.sampled_from("abc"), min_size=2, max_size=4),
    events=st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 12)), max_size=9),
)
def test_the_earliest_choices_reach_as_far_as_any_choice(steps, events):
    times: dict[str, list[int]] = {}
    for name, t in sorted(events, key=lambda e: e[1]):
        times.setdefault(name, []).append(t)
    reached = funnels.journey(steps, times, 4, 2, 9)
    assert len(reached) == deepest(steps, events, 4, 2, 9)


def test_figures_per_step():
    journeys = [(0, 60 * funnels.SECOND, 180 * funnels.SECOND)] * 2 + [
        (0, 120 * funnels.SECOND),
        (0,),
    ]
    first, second, third = funnels.summarize(STEPS, journeys)
    assert (first.reached, first.dropped, first.drop_off_rate, first.conversion_rate) == (
        4,
        0,
        0.0,
        1.0,
    )
    assert first.median_seconds is None
    assert (second.reached, second.dropped, second.drop_off_rate) == (3, 1, 0.25)
    assert second.median_seconds == 60  # of 60, 60, 120
    assert (third.reached, third.dropped) == (2, 1)
    assert third.drop_off_rate == pytest.approx(1 / 3)
    assert third.conversion_rate == 0.5 and third.median_seconds == 120
    empty = funnels.summarize(STEPS, [])
    assert [(f.reached, f.drop_off_rate, f.conversion_rate) for f in empty] == [(0, 0.0, 0.0)] * 3


def test_steps_are_two_to_eight_names_given_repeated_or_comma_separated():
    assert funnels.steps_of(["view,signup", "first_night"]) == STEPS
    assert funnels.steps_of(["view", "view"]) == ["view", "view"]
    for bad in ([], ["view"], [",".join(["a"] * 9)], ["view,"], ["view", "Sign Up"]):
        with pytest.raises(InvalidArgument) as raised:
            funnels.steps_of(bad)
        assert raised.value.violations[0].field == "steps"


# Retention cohorts

BERLIN = ZoneInfo("Europe/Berlin")  # summer time from 2026-03-29 02:00, to 2026-10-25 03:00


def at(text: str, tz=UTC) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz).astimezone(UTC)


def activity_rows(*moments: tuple[str, datetime]) -> list[tuple[str, date, int]]:
    recorded = cohorts.Activity()
    for user, when in moments:
        recorded.add(user, when)
    return [(user, day, mask) for (user, day), mask in recorded.days.items()]


def test_a_week_in_the_callers_zone_is_as_long_as_its_clocks_make_it():
    weeks = cohorts.spans(at("2026-03-25T12:00", BERLIN), 2, "week", BERLIN)
    assert [w.label for w in weeks] == ["2026-03-23", "2026-03-30"]
    assert weeks[0].start == at("2026-03-22T23:00")  # Monday 00:00 CET
    assert weeks[0].end == weeks[1].start == at("2026-03-29T22:00")  # Monday 00:00 CEST
    assert weeks[0].end - weeks[0].start == timedelta(hours=167)
    days = cohorts.spans(at("2026-10-25T00:00", BERLIN), 2, "day", BERLIN)
    assert days[0].end - days[0].start == timedelta(hours=25)


def test_a_missing_midnight_starts_the_day_at_its_first_instant():
    santiago = ZoneInfo("America/Santiago")  # 2026-09-06 00:00 -04 becomes 01:00 -03
    (day,) = cohorts.spans(at("2026-09-06T12:00", santiago), 1, "day", santiago)
    assert day.start == at("2026-09-06T04:00") and day.start.astimezone(santiago).hour == 1


def test_cohorts_and_returns_follow_local_weeks_across_the_clock_change():
    weeks = cohorts.spans(at("2026-03-16T00:00", BERLIN), 4, "week", BERLIN)
    first_seen = {
        "ann": at("2026-03-16T09:00", BERLIN),
        # Sunday 23:30 local is still the week of the 16th
        "bob": at("2026-03-22T23:30", BERLIN),
        "cy": at("2026-03-23T00:30", BERLIN),  # Sunday 23:30 UTC: the next local week
    }
    activity = activity_rows(
        ("ann", first_seen["ann"]),
        ("bob", first_seen["bob"]),
        ("cy", first_seen["cy"]),
        ("ann", at("2026-03-29T23:30", BERLIN)),  # Sunday 21:30 UTC, the day clocks changed
        ("bob", at("2026-03-30T00:30", BERLIN)),  # Sunday 22:30 UTC: already the next week
        ("cy", at("2026-03-30T00:30", BERLIN)),
        ("cy", at("2026-03-30T01:00", BERLIN)),  # twice in a week counts once
    )
    now = at("2026-04-20T00:00")
    rows = cohorts.table(weeks, 2, 2, first_seen, activity, now)
    assert [(r.period.label, r.size, r.returned) for r in rows] == [
        ("2026-03-16", 2, [2, 1, 1]),  # ann came back in week +1, bob in week +2
        ("2026-03-23", 1, [1, 1, 0]),  # cy in week +1
    ]


def test_only_periods_begun_by_now_are_given_and_users_outside_the_cohorts_are_ignored():
    days = cohorts.spans(at("2026-11-01T00:00"), 4, "day", ZoneInfo("UTC"))
    first_seen = {"ann": at("2026-11-01T10:00"), "old": at("2026-10-01T10:00")}
    activity = activity_rows(
        ("ann", at("2026-11-01T10:00")),
        ("ann", at("2026-11-02T10:00")),
        ("old", at("2026-11-02T10:00")),
    )
    rows = cohorts.table(days, 2, 2, first_seen, activity, now=at("2026-11-02T12:00"))
    assert [(r.size, r.returned) for r in rows] == [(1, [1, 1]), (0, [0])]


def test_buckets_map_to_local_periods_in_a_quarter_hour_zone():
    kathmandu = ZoneInfo("Asia/Kathmandu")  # UTC+5:45: its midnight is 18:15 UTC
    days = cohorts.spans(at("2026-11-01T12:00", kathmandu), 2, "day", kathmandu)
    masks = dict(cohorts.day_masks(date(2026, 11, 1), days))
    boundary = (18 * 60 + 15) // 15  # bucket 73 starts at 18:15 UTC
    assert masks == {0: (1 << boundary) - 1, 1: ((1 << 96) - 1) ^ ((1 << boundary) - 1)}


def test_activity_widens_first_and_last_and_sets_one_bit_per_bucket():
    recorded = cohorts.Activity()
    for minutes in (100, 10, 14, 2000):
        recorded.add("ann", at("2026-11-01T00:00") + timedelta(minutes=minutes))
    assert recorded.spans["ann"] == (
        at("2026-11-01T00:10"),
        at("2026-11-01T00:00") + timedelta(minutes=2000),
    )
    assert recorded.days["ann", date(2026, 11, 1)] == 1 << 0 | 1 << 6
    text = cohorts.encode(recorded.days["ann", date(2026, 11, 1)])
    assert len(text) == 96 and text.index("1") == 0 and text[6] == "1"
    assert cohorts.decode(text) == recorded.days["ann", date(2026, 11, 1)]
