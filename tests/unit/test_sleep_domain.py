"""The sleep service's rules, without any server: valid nights and the day they count on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.kit.errors import InvalidArgument
from services.sleep import domain

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    """An instant from an ISO string with an offset (or Z)."""
    return datetime.fromisoformat(text)


def night(start: str, end: str, time_zone: str = "UTC", **extra) -> domain.Night:
    fields = {"quality": 0, "note": "", "tags": [], "now": NOW, **extra}
    return domain.night(start=at(start), end=at(end), time_zone=time_zone, **fields)


def refused(field: str, match: str = ""):
    return pytest.raises(InvalidArgument, match=f"^{field}: .*{match}")


# --- the sleep date: the local date on which the night ended ---------------------------


def test_a_night_across_midnight_counts_on_the_day_it_ended():
    n = night("2026-11-20T23:30:00+01:00", "2026-11-21T07:15:00+01:00", "Europe/Paris")
    assert n.sleep_date == date(2026, 11, 21)
    assert n.duration == timedelta(hours=7, minutes=45)


def test_a_nap_before_midnight_counts_on_that_day():
    n = night("2026-11-20T14:00:00-05:00", "2026-11-20T14:40:00-05:00", "America/New_York")
    assert n.sleep_date == date(2026, 11, 20)


def test_ending_exactly_at_local_midnight_counts_on_the_new_day():
    n = night("2026-11-20T16:00:00-08:00", "2026-11-21T00:00:00-08:00", "America/Los_Angeles")
    assert n.sleep_date == date(2026, 11, 21)


def test_the_same_instant_is_a_different_day_in_kiritimati_and_st_johns():
    # 10:30 UTC on 21 November: 00:30 on the 22nd at UTC+14, 07:00 on the 21st at UTC-3:30.
    end = at("2026-11-21T10:30:00Z")
    assert domain.sleep_date(end, "Pacific/Kiritimati") == date(2026, 11, 22)
    assert domain.sleep_date(end, "America/St_Johns") == date(2026, 11, 21)
    assert domain.sleep_date(end, "UTC") == date(2026, 11, 21)


def test_kiritimati_night_ending_in_the_utc_evening_is_already_tomorrow():
    n = night("2026-11-20T09:00:00Z", "2026-11-20T17:00:00Z", "Pacific/Kiritimati")
    assert n.sleep_date == date(2026, 11, 21)  # 07:00 local on the 21st


def test_st_johns_half_hour_offset_decides_the_day():
    # 03:29 UTC is 23:59 the day before in St. John's (UTC-3:30); 03:30 UTC is midnight.
    assert domain.sleep_date(at("2026-11-21T03:29:00Z"), "America/St_Johns") == date(2026, 11, 20)
    assert domain.sleep_date(at("2026-11-21T03:30:00Z"), "America/St_Johns") == date(2026, 11, 21)


def test_spring_forward_night_is_an_hour_shorter_than_the_clocks_say():
    # New York, 8 March 2026: clocks jump from 02:00 to 03:00.
    n = night("2026-03-07T23:00:00-05:00", "2026-03-08T07:00:00-04:00", "America/New_York")
    assert n.duration == timedelta(hours=7)
    assert n.sleep_date == date(2026, 3, 8)


def test_fall_back_night_is_an_hour_longer_than_the_clocks_say():
    # London, 25 October 2026: clocks go back from 02:00 BST to 01:00 GMT.
    n = night("2026-10-24T23:00:00+01:00", "2026-10-25T07:00:00+00:00", "Europe/London")
    assert n.duration == timedelta(hours=9)
    assert n.sleep_date == date(2026, 10, 25)


def test_the_sleep_date_follows_the_zone_not_the_offset_written():
    # Written in UTC, counted in Tokyo: 22:00 UTC on the 20th is 07:00 on the 21st.
    n = night("2026-11-20T14:00:00Z", "2026-11-20T22:00:00Z", "Asia/Tokyo")
    assert n.sleep_date == date(2026, 11, 21)


# --- times ------------------------------------------------------------------------------


def test_end_must_be_after_start():
    with refused("end_time", match="after start_time"):
        night("2026-11-21T07:00:00Z", "2026-11-21T06:00:00Z")
    with refused("end_time"):
        night("2026-11-21T07:00:00Z", "2026-11-21T07:00:00Z")


def test_durations_from_ten_minutes_to_twenty_four_hours():
    assert night("2026-11-21T07:00:00Z", "2026-11-21T07:10:00Z").duration == domain.MIN_DURATION
    assert night("2026-11-20T07:00:00Z", "2026-11-21T07:00:00Z").duration == domain.MAX_DURATION
    with pytest.raises(InvalidArgument, match="lasts 9 min; record nights of at least 10 min"):
        night("2026-11-21T07:00:00Z", "2026-11-21T07:09:00Z")
    with pytest.raises(InvalidArgument, match="lasts 24 h 1 min; a night lasts at most 24 h"):
        night("2026-11-20T07:00:00Z", "2026-11-21T07:01:00Z")


def test_end_may_not_be_in_the_future_beyond_the_clock_skew():
    skew_edge = (NOW + domain.CLOCK_SKEW).isoformat()
    assert night("2026-11-22T04:00:00Z", skew_edge).end == NOW + domain.CLOCK_SKEW
    with pytest.raises(InvalidArgument, match=r"^end_time: is in the future"):
        night("2026-11-22T04:00:00Z", (NOW + domain.CLOCK_SKEW + timedelta(seconds=1)).isoformat())


def test_missing_times_are_named():
    with pytest.raises(InvalidArgument, match=r"^start_time: is required"):
        domain.night(start=None, end=NOW, time_zone="UTC", quality=0, note="", tags=[], now=NOW)
    with pytest.raises(InvalidArgument, match=r"^end_time: is required"):
        domain.night(start=NOW, end=None, time_zone="UTC", quality=0, note="", tags=[], now=NOW)


# --- the other fields -------------------------------------------------------------------

OK_START, OK_END = "2026-11-20T23:00:00Z", "2026-11-21T07:00:00Z"


@pytest.mark.parametrize("quality", [0, 1, 3, 5])
def test_quality_one_to_five_or_not_rated(quality):
    assert night(OK_START, OK_END, quality=quality).quality == quality


@pytest.mark.parametrize("quality", [-1, 6, 10])
def test_quality_out_of_range(quality):
    with pytest.raises(InvalidArgument, match=r"^quality: must be 1 to 5, or 0 for not rated"):
        night(OK_START, OK_END, quality=quality)


def test_note_is_trimmed_and_bounded():
    assert night(OK_START, OK_END, note="  slept well\nno dreams  ").note == "slept well\nno dreams"
    assert len(night(OK_START, OK_END, note="z" * domain.MAX_NOTE).note) == domain.MAX_NOTE
    with pytest.raises(InvalidArgument, match=r"^note: must be at most 500 characters; it has 501"):
        night(OK_START, OK_END, note="z" * 501)
    with pytest.raises(InvalidArgument, match=r"^note: must not contain control"):
        night(OK_START, OK_END, note="bell\x07")


def test_tags_are_lowercased_trimmed_and_deduplicated_in_order():
    tags = ["Travel", " caffeine ", "travel", "late-night", "jet_lag", "été"]
    assert night(OK_START, OK_END, tags=tags).tags == (
        "travel",
        "caffeine",
        "late-night",
        "jet_lag",
        "été",
    )


@pytest.mark.parametrize("tag", ["", "two words", "-dash-first", "_under", "x" * 33, "a/b"])
def test_bad_tags(tag):
    with pytest.raises(InvalidArgument, match=r"^tags: .* is not a tag"):
        night(OK_START, OK_END, tags=[tag])


def test_at_most_ten_distinct_tags():
    assert len(night(OK_START, OK_END, tags=[f"t{i}" for i in range(10)] + ["t0"]).tags) == 10
    with pytest.raises(InvalidArgument, match=r"^tags: at most 10 tags; got 11"):
        night(OK_START, OK_END, tags=[f"t{i}" for i in range(11)])


@pytest.mark.parametrize("zone", ["Mars/Olympus", "europe/paris", "UTC+2", " UTC", "../etc/passwd"])
def test_unknown_time_zones_are_refused(zone):
    with pytest.raises(InvalidArgument, match=r"^time_zone: .* is not an IANA time zone name"):
        night(OK_START, OK_END, zone)


def test_request_ids():
    assert domain.check_request_id("") == ""
    assert domain.check_request_id("3f1c2a9e-0b7d-4f5e-9a41-6c2d8e7f1a00") != ""
    for bad in ["has space", "x" * 65, "ünï"]:
        with pytest.raises(InvalidArgument, match=r"^request_id: "):
            domain.check_request_id(bad)


def test_fingerprint_tells_a_retry_from_a_different_night():
    n = night(OK_START, OK_END, quality=3, tags=["a"])
    same = domain.request_fingerprint(n.start, n.end, "", 3, "", ("a",))
    assert same == domain.request_fingerprint(n.start, n.end, "", 3, "", ("a",))
    assert same != domain.request_fingerprint(n.start, n.end, "", 4, "", ("a",))
    later = n.end + timedelta(minutes=1)
    assert same != domain.request_fingerprint(n.start, later, "", 3, "", ("a",))
    assert same != domain.request_fingerprint(n.start, n.end, "UTC", 3, "", ("a",))


# --- list filters and update masks --------------------------------------------------------


def test_dates_must_be_iso_calendar_dates():
    assert domain.parse_date("", "start_date") is None
    assert domain.parse_date("2026-02-28", "start_date") == date(2026, 2, 28)
    for bad in ["2026-2-28", "20260228", "2026-02-30", "yesterday"]:
        with pytest.raises(InvalidArgument, match=r"^start_date: .* YYYY-MM-DD"):
            domain.parse_date(bad, "start_date")


def test_date_range_must_not_be_reversed():
    domain.check_date_range(date(2026, 11, 1), date(2026, 11, 1))
    domain.check_date_range(None, date(2026, 11, 1))
    with pytest.raises(InvalidArgument, match=r"^end_date: must not be before start_date"):
        domain.check_date_range(date(2026, 11, 2), date(2026, 11, 1))


def test_update_mask():
    assert domain.check_update_mask([], {"quality", "note", "id"}) == ["quality", "note"]
    assert domain.check_update_mask(["note", "note", "end_time"], set()) == ["note", "end_time"]
    with pytest.raises(InvalidArgument, match=r"^update_mask: sleep_date cannot be changed"):
        domain.check_update_mask(["sleep_date"], set())
    with pytest.raises(InvalidArgument, match=r"^update_mask: unknown field 'mood'"):
        domain.check_update_mask(["mood"], set())
    # Found by trying: a body whose fields were all misspelt changed nothing and answered 200.
    with pytest.raises(InvalidArgument, match=r"^update_mask: names no field to change"):
        domain.check_update_mask([], {"id"})


# --- nights started live ---------------------------------------------------------------


def test_a_planned_wake_time_is_after_the_start_and_within_a_night():
    assert domain.check_planned_end(None, NOW) is None
    assert domain.check_planned_end(NOW + timedelta(hours=24), NOW) == NOW + timedelta(hours=24)
    with refused("planned_end_time", "after the night's start"):
        domain.check_planned_end(NOW, NOW)
    with refused("planned_end_time", "at most 24 h after"):
        domain.check_planned_end(NOW + timedelta(hours=24, seconds=1), NOW)


def test_a_night_is_overdue_once_open_longer_than_a_night_lasts():
    assert not domain.overdue(NOW - timedelta(hours=24), NOW)
    assert domain.overdue(NOW - timedelta(hours=24, seconds=1), NOW)


def test_a_start_is_told_from_a_create_and_from_another_start_by_its_fingerprint():
    tonight = domain.start_fingerprint("Europe/Paris", None)
    assert tonight == domain.start_fingerprint("Europe/Paris", None)
    assert tonight != domain.start_fingerprint("Europe/Paris", NOW)
    assert tonight != domain.start_fingerprint("", None)
    created = domain.request_fingerprint(NOW, NOW, "Europe/Paris", 0, "", ())
    assert tonight != created
