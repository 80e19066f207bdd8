"""The feed's pure rules: order, cursors, entries as the API shows them, and who is active.

The merge of fan-out with fan-in runs inside Redis (services/feed/page.lua);
tests/integration/test_feed_service.py checks it against a real server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from zentry.events.v1 import sleep_events_pb2 as ev

from services.feed import activity, domain
from services.feed.domain import Key
from services.kit.errors import InvalidArgument


def test_score_is_exact_microseconds_that_a_double_holds():
    when = timestamp_pb2.Timestamp(seconds=1_795_000_000, nanos=123_456_789)
    assert domain.score(when) == 1_795_000_000_123_456
    year_2250 = timestamp_pb2.Timestamp(seconds=8_835_000_000)
    assert domain.score(year_2250) < 2**53  # so a double (a Redis score) holds it exactly
    assert float(domain.score(year_2250)) + 1 == domain.score(year_2250) + 1


def test_keys_order_by_score_then_id_like_redis_orders_equal_scores():
    keys = [Key(5, "b"), Key(7, "a"), Key(5, "c"), Key(5, "a")]
    assert sorted(keys, reverse=True) == [Key(7, "a"), Key(5, "c"), Key(5, "b"), Key(5, "a")]


def test_a_cursor_round_trips_and_anything_else_is_refused_naming_the_field():
    key = Key(1_795_000_000_123_456, "0b9c8d2e-0000-4000-8000-000000000001")
    assert domain.decode_cursor(domain.encode_cursor(key)) == key
    assert domain.decode_cursor("") is None
    forged = [
        domain.encode_cursor(Key(1, "x'; DROP TABLE entries")),  # well-formed, but not an id
        domain.encode_cursor(Key(-1, key.entry_id)),
        domain.encode_cursor(Key(2**60, key.entry_id)),
    ]
    for token in ("garbage", domain.encode_cursor(key)[:-4], "eyJzIjoiMSIsImUiOiJ4In0", *forged):
        with pytest.raises(InvalidArgument, match=r"^page_token: .*start again without it"):
            domain.decode_cursor(token)


def test_an_event_entry_becomes_the_apis_sleep_entry():
    created = timestamp_pb2.Timestamp(seconds=1_795_000_000)
    state = ev.SleepEntryState(
        entry_id="e1",
        user_id="u1",
        start_time=timestamp_pb2.Timestamp(seconds=1_794_970_000),
        end_time=timestamp_pb2.Timestamp(seconds=1_794_997_000),
        duration=duration_pb2.Duration(seconds=27_000),
        time_zone="Asia/Tokyo",
        sleep_date="2026-11-21",
        quality=3,
        note="n",
        tags=["travel"],
        revision=4,
        create_time=created,
        update_time=created,
    )
    entry = domain.entry_from_state(state)
    assert (entry.id, entry.user_id, entry.time_zone, entry.sleep_date) == (
        "e1",
        "u1",
        "Asia/Tokyo",
        "2026-11-21",
    )
    assert (entry.quality, entry.note, list(entry.tags)) == (3, "n", ["travel"])
    assert entry.duration.seconds == 27_000
    assert entry.start_time == state.start_time and entry.create_time == created


def test_activity_is_recorded_at_most_hourly_and_fan_out_looks_back_further_than_expiry():
    seen = activity.Activity(timedelta(days=30))
    now = datetime(2026, 11, 22, tzinfo=UTC)
    assert seen.due("r", now)
    assert not seen.due("r", now + timedelta(minutes=59))
    assert seen.due("r", now + timedelta(minutes=61))
    seen.forget("r")
    assert seen.due("r", now + timedelta(minutes=62))
    assert now - seen.active_since(now) > timedelta(days=30) + activity.TOUCH_EVERY
