"""The control-character guard's walk over real request messages (no servers)."""

from __future__ import annotations

import pytest
from google.protobuf import timestamp_pb2
from zentry.analytics.v1 import product_analytics_service_pb2 as analytics
from zentry.sleep.v1 import sleep_service_pb2 as sleep
from zentry.user.v1 import user_service_pb2 as users

from services.kit.text import first_control_character


@pytest.mark.parametrize("bad", ["\x00", "\x07", "\x1b[31m", "\x7f", "\x85", "a\x9fb"])
def test_a_control_character_is_found_in_a_plain_field(bad):
    request = users.CreateUserRequest(username="ada", email=f"ada{bad}@example.com")
    assert first_control_character(request) == "email"


def test_tabs_and_line_breaks_pass():
    request = sleep.CreateSleepEntryRequest(note="woke at 3\r\n\tthen slept", tags=["a"])
    assert first_control_character(request) is None


def test_nested_repeated_and_map_fields_are_named_by_their_path():
    def batch(**fields):
        ok = analytics.ClientEvent(event_id="e1", name="page_view", page="/feed")
        bad = analytics.ClientEvent(event_id="e2", name="page_view", **fields)
        return analytics.TrackEventsRequest(events=[ok, bad])

    assert first_control_character(batch(page="/feed\x00")) == "events[1].page"
    assert first_control_character(batch(properties={"k": "v\x00"})) == "events[1].properties['k']"
    assert first_control_character(batch(properties={"k\x00": "v"})) == "events[1].properties"
    assert first_control_character(batch(properties={"k": "v"})) is None


def test_fields_that_are_not_text_are_left_alone():
    request = sleep.CreateSleepEntryRequest(start_time=timestamp_pb2.Timestamp(seconds=7))
    assert first_control_character(request) is None
