"""The analytics service's pure rules: statistics, periods, sessions, what TrackEvents takes."""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from google.protobuf import timestamp_pb2
from zentry.analytics.v1 import product_analytics_service_pb2 as pb

from services.analytics.product import periods, sessions, tracking
from services.analytics.stats import domain as sleep_stats
from services.analytics.stats.domain import Night
from services.kit.errors import InvalidArgument

D = date(2026, 11, 2)  # a Monday


def night(day: int, hours: float, bedtime: str = "23:00", wake: str = "07:00", quality=None):
    h, m = map(int, bedtime.split(":"))
    wh, wm = map(int, wake.split(":"))
    return Night(D + timedelta(days=day), int(hours * 3600), h * 60 + m, wh * 60 + wm, quality)


# Clock times on the circle


def test_clock_times_either_side_of_midnight_average_to_midnight_not_noon():
    mean = sleep_stats.clock_mean([23 * 60 + 30, 30])
    assert round(mean.minutes) % 1440 == 0
    assert sleep_stats.clock_text(mean.minutes) == "00:00"
    assert mean.spread == pytest.approx(30.0, abs=0.2)  # like a plain stddev for tight clusters


def test_circular_mean_equals_the_plain_mean_away_from_midnight():
    times = [22 * 60, 22 * 60 + 40, 23 * 60 + 20]
    mean = sleep_stats.clock_mean(times)
    assert mean.minutes == pytest.approx(statistics.fmean(times), abs=0.5)
    assert mean.spread == pytest.approx(statistics.pstdev(times), rel=0.02)


def test_minutes_from_midnight_keep_bedtimes_before_midnight_negative():
    assert sleep_stats.from_midnight(23 * 60 + 41) == -19
    assert sleep_stats.from_midnight(30) == 30
    assert sleep_stats.from_midnight(12 * 60) == -720
    assert sleep_stats.clock_text(1439.6) == "00:00"
    assert sleep_stats.clock_mean([]) is None


def test_consistency_is_100_for_a_fixed_schedule_and_0_at_90_minutes_spread():
    assert sleep_stats.consistency_score(0, 0) == 100
    assert sleep_stats.consistency_score(45, 45) == 50
    assert sleep_stats.consistency_score(200, 100) == 0


# Statistics


def test_summary_of_a_week():
    nights = [
        night(0, 7, "23:30", "06:30", quality=4),  # Monday
        night(1, 8, "00:30", "08:30", quality=2),  # Tuesday
        night(2, 6, "23:00", "05:00"),  # Wednesday, not rated
        night(7, 9, "22:00", "07:00", quality=5),  # the next Monday
    ]
    s = sleep_stats.summarize(list(reversed(nights)), goal_seconds=8 * 3600)
    assert s.nights == 4
    assert s.average_seconds == 7.5 * 3600
    assert s.median_seconds == 7.5 * 3600  # even count: mean of the middle two
    assert s.stddev_seconds == pytest.approx(statistics.pstdev([7, 8, 6, 9]) * 3600)
    # debt: (8-7) + 0 + (8-6) + (8-9) = 2 hours, the long night paying one back
    assert s.debt_seconds == 2 * 3600 and s.nights_below_goal == 2
    assert s.best.sleep_date == D + timedelta(days=7) and s.worst.sleep_date == D + timedelta(2)
    assert s.average_quality == pytest.approx(11 / 3) and s.rated_nights == 3
    monday = s.weekdays[0]
    assert (monday.weekday, monday.nights, monday.average_seconds) == ("monday", 2, 8 * 3600)
    assert monday.average_quality == 4.5
    assert [w.nights for w in s.weekdays] == [2, 1, 1, 0, 0, 0, 0]
    assert sleep_stats.clock_text(s.bedtime.minutes) in ("23:15", "23:14", "23:16")


def test_debt_never_goes_below_zero_and_an_empty_range_is_all_zeros():
    assert sleep_stats.summarize([night(0, 10), night(1, 10)], 8 * 3600).debt_seconds == 0
    empty = sleep_stats.summarize([], 8 * 3600)
    assert (empty.nights, empty.average_seconds, empty.median_seconds, empty.debt_seconds) == (
        0,
        0.0,
        0.0,
        0,
    )
    assert empty.best is None and empty.bedtime is None and len(empty.weekdays) == 7


def test_ties_for_best_and_worst_go_to_the_earlier_night():
    s = sleep_stats.summarize([night(3, 7), night(1, 7), night(2, 7)], 8 * 3600)
    assert s.best.sleep_date == s.worst.sleep_date == D + timedelta(days=1)


# Moving averages


def test_moving_averages_use_nights_before_the_range_and_skip_days_without_one():
    history = [night(-i, 6) for i in range(1, 40)]  # 39 six-hour nights before the range
    points = sleep_stats.trend([*history, night(0, 8), night(2, 8)], D, D + timedelta(days=2))
    first, gap, last = points
    assert first.avg_7.nights == 7 and first.avg_7.seconds == pytest.approx((6 * 6 + 8) * 3600 / 7)
    assert first.avg_30.nights == 30
    assert first.avg_30.seconds == pytest.approx((29 * 6 + 8) * 3600 / 30)
    assert gap.night is None and gap.avg_7 == first.avg_7  # carried over a day with no night
    assert last.avg_7.seconds == pytest.approx((5 * 6 + 8 + 8) * 3600 / 7)


def test_at_the_start_of_a_history_averages_cover_the_nights_there_are():
    points = sleep_stats.trend([night(1, 6), night(2, 8)], D, D + timedelta(days=2))
    assert points[0].avg_7 is None and points[0].avg_30 is None  # nothing yet
    assert points[1].avg_7.nights == 1 and points[1].avg_7.seconds == 6 * 3600
    assert points[2].avg_7.nights == 2 and points[2].avg_30.seconds == 7 * 3600


def test_moving_bedtime_is_circular():
    points = sleep_stats.trend(
        [night(0, 7, "23:40"), night(1, 7, "00:20")], D, D + timedelta(days=1)
    )
    assert sleep_stats.clock_text(points[1].avg_7.bedtime) == "00:00"


# Periods in a time zone

UTC_NOON = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_days_in_a_half_hour_zone_are_whole_15_minute_buckets():
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+5:30
    days = periods.split(
        UTC_NOON, UTC_NOON + timedelta(days=2), "day", kolkata, timedelta(days=400)
    )
    assert [d.label for d in days] == ["2026-11-21", "2026-11-22", "2026-11-23"]
    assert days[0].start == datetime(2026, 11, 20, 18, 30, tzinfo=UTC)  # aligned down
    assert len(days[1].buckets) == 96


def test_the_hour_repeated_when_clocks_go_back_is_one_period_of_two_hours():
    new_york = ZoneInfo("America/New_York")  # back from EDT to EST on 2026-11-01 at 02:00
    start = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 EDT
    hours = periods.split(start, start + timedelta(hours=4), "hour", new_york, timedelta(days=1))
    assert [h.label[-5:] for h in hours] == ["00:00", "01:00", "02:00"]
    assert len(hours[1].buckets) == 8  # 01:00 EDT and 01:00 EST
    day = periods.split(start, start + timedelta(hours=1), "day", new_york, timedelta(days=1))
    assert day[0].start == start


def test_minutes_and_range_limits():
    minutes = periods.split(
        UTC_NOON + timedelta(seconds=30),
        UTC_NOON + timedelta(minutes=3),
        "minute",
        ZoneInfo("UTC"),
        timedelta(hours=24),
    )
    assert [m.label for m in minutes] == [
        "2026-11-21T12:00",
        "2026-11-21T12:01",
        "2026-11-21T12:02",
    ]
    with pytest.raises(
        InvalidArgument, match="start_time: minute periods cover at most 24 hours per query"
    ):
        periods.split(
            UTC_NOON, UTC_NOON + timedelta(days=2), "minute", ZoneInfo("UTC"), timedelta(hours=24)
        )
    with pytest.raises(InvalidArgument, match="start_time: must be before end_time"):
        periods.time_range(UTC_NOON, UTC_NOON, "day", UTC_NOON)
    with pytest.raises(InvalidArgument, match="granularity: must be one of hour, day"):
        periods.granularity_of("week", ("hour", "day"))
    assert periods.bucket_of(datetime(2026, 1, 1, 10, 44, 59, tzinfo=UTC)).minute == 30


def test_a_range_at_the_start_of_the_calendar_is_refused_not_overflowed():
    first = datetime(1, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidArgument, match="end_time: must be at or after 2000-01-01"):
        periods.time_range(None, first, "day", UTC_NOON)
    with pytest.raises(InvalidArgument, match="start_time: must be at or after 2000-01-01"):
        periods.time_range(first, UTC_NOON, "day", UTC_NOON)


# Sessions


def test_sessions_split_after_30_minutes_of_inactivity_and_take_late_events():
    t0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    found: list[sessions.Session] = []
    first = sessions.assign(found, "v", t0, page_view=True)
    assert sessions.assign(found, "v", t0 + timedelta(minutes=29), True) is first
    later = sessions.assign(found, "v", t0 + timedelta(minutes=60), False)
    assert later is not first  # 31 minutes after the last event
    late = sessions.assign(found, "v", t0 - timedelta(minutes=10), False)  # an offline batch
    assert late is first and first.started_at == t0 - timedelta(minutes=10)
    assert (first.events, first.page_views, later.events, later.page_views) == (3, 2, 1, 0)


# What TrackEvents accepts

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def event(**fields) -> pb.ClientEvent:
    when = timestamp_pb2.Timestamp()
    when.FromDatetime(fields.pop("when", NOW - timedelta(minutes=1)))
    values = {"event_id": "e-1", "name": "page_view", "page": "/feed", **fields}
    return pb.ClientEvent(event_time=when, **values)


def test_a_good_batch_passes():
    tracking.check_batch(
        [event(), event(event_id="e-2", properties={"plan": "free"})], NOW, tracking.Limits(), None
    )


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (event(event_id=""), "events[0].event_id"),
        (event(event_id="has space"), "events[0].event_id"),
        (event(name="Page View"), "events[0].name"),
        (event(name="x" * 65), "events[0].name"),
        (event(when=NOW + timedelta(minutes=6)), "events[0].event_time"),
        (event(when=NOW - timedelta(hours=73)), "events[0].event_time"),
        (event(page="/" * 513), "events[0].page"),
        (event(anonymous_id="a" * 65), "events[0].anonymous_id"),
        (event(properties={f"k{i}": "v" for i in range(11)}), "events[0].properties"),
        (event(properties={"Bad-Key": "v"}), "events[0].properties['Bad-Key']"),
        (event(properties={"k": "v" * 101}), "events[0].properties['k']"),
        (event(user_id="someone"), "events[0].user_id"),  # no token
    ],
)
def test_each_bad_field_is_named(bad, field):
    with pytest.raises(InvalidArgument) as raised:
        tracking.check_batch([bad], NOW, tracking.Limits(), None)
    assert raised.value.violations[0].field == field
    assert raised.value.message.startswith(field)
    assert "nothing in this batch was stored" in raised.value.message


def test_a_batch_is_checked_whole_and_bounded():
    missing_time = pb.ClientEvent(event_id="e-3", name="tap")
    with pytest.raises(InvalidArgument) as raised:
        tracking.check_batch([event(), event(), missing_time], NOW, tracking.Limits(), None)
    assert [v.field for v in raised.value.violations] == [
        "events[1].event_id",  # the same id twice in one batch
        "events[2].event_time",
    ]
    with pytest.raises(InvalidArgument, match="events: send 1 to 2 events"):
        tracking.check_batch([], NOW, tracking.Limits(max_batch=2), None)
    with pytest.raises(InvalidArgument, match="not the signed-in user"):
        tracking.check_batch([event(user_id="other")], NOW, tracking.Limits(), "me")
    tracking.check_batch([event(user_id="me")], NOW, tracking.Limits(), "me")


def test_bots_are_known_by_their_user_agent():
    assert tracking.is_bot(
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    )
    assert tracking.is_bot("Mozilla/5.0 HeadlessChrome/120.0")
    assert tracking.is_bot("curl/8.5.0") and tracking.is_bot("")
    assert not tracking.is_bot(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1"
    )
    assert not tracking.is_bot("Zentry/2.3 (Android 14)")


def test_visitor_ids_hide_the_address_and_change_with_the_salt():
    one = tracking.visitor_id(b"s" * 32, None, "203.0.113.9", "Mozilla/5.0", "device-1")
    assert one.startswith("a:") and "203.0.113.9" not in one
    assert one == tracking.visitor_id(b"s" * 32, None, "203.0.113.9", "Mozilla/5.0", "device-1")
    assert one != tracking.visitor_id(b"t" * 32, None, "203.0.113.9", "Mozilla/5.0", "device-1")
    assert one != tracking.visitor_id(b"s" * 32, None, "203.0.113.9", "Mozilla/5.0", "device-2")
    assert tracking.visitor_id(b"s" * 32, "user-7", "203.0.113.9", "x", "") == "u:user-7"


# Streaks: nights in a row that met the goal

GOAL = 8 * 3600


def ended(day: int, hours: float, at: str = "07:00", tz: str = "UTC") -> Night:
    """A night of `hours` ending at local `at` on D + `day`, with its end as an instant."""
    h, m = map(int, at.split(":"))
    end = datetime.combine(D + timedelta(days=day), datetime.min.time(), ZoneInfo(tz))
    end = end.replace(hour=h, minute=m)
    return Night(D + timedelta(days=day), int(hours * 3600), 0, h * 60 + m, None, end)


def test_a_streak_is_nights_in_a_row_that_met_the_goal():
    nights = [ended(0, 8), ended(1, 9), ended(2, 7.9), ended(3, 8), ended(4, 8), ended(5, 8)]
    assert sleep_stats.streaks(nights, GOAL, D + timedelta(days=5)) == sleep_stats.Streaks(3, 3)
    # A date with no night ends it too.
    gap = [ended(0, 8), ended(1, 8), ended(3, 8)]
    assert sleep_stats.streaks(gap, GOAL, D + timedelta(days=3)) == sleep_stats.Streaks(1, 2)
    assert sleep_stats.streaks([], GOAL, D) == sleep_stats.Streaks(0, 0)


def test_the_current_streak_lives_until_the_night_after_its_last_is_due():
    nights = [ended(0, 8), ended(1, 8)]
    assert sleep_stats.streaks(nights, GOAL, D + timedelta(days=1)).current == 2
    assert sleep_stats.streaks(nights, GOAL, D + timedelta(days=2)).current == 2, "tonight"
    assert sleep_stats.streaks(nights, GOAL, D + timedelta(days=3)) == sleep_stats.Streaks(0, 2)
    # Nights after `today` are not looked at: a range's end is its today.
    assert sleep_stats.streaks(nights, GOAL, D) == sleep_stats.Streaks(1, 1)
    below = [ended(0, 8), ended(1, 6)]
    assert sleep_stats.streaks(below, GOAL, D + timedelta(days=1)).current == 0


def test_a_date_the_calendar_skipped_does_not_end_a_streak():
    # Los Angeles on the 10th, then east over the date line: Tokyo's next morning is the 12th.
    la = ended(10, 8, "07:00", "America/Los_Angeles")
    tokyo = ended(12, 8, "07:00", "Asia/Tokyo")
    assert tokyo.last_end - la.last_end == timedelta(hours=31)
    assert sleep_stats.follows(la, tokyo)
    assert sleep_stats.streaks([la, tokyo], GOAL, tokyo.sleep_date).current == 2
    # The same two dates in one zone are a night missed, 48 hours apart.
    assert not sleep_stats.follows(la, ended(12, 8, "07:00", "America/Los_Angeles"))
    # Without the ends (not known), only consecutive dates follow each other.
    assert not sleep_stats.follows(night(10, 8), night(12, 8))
