"""What careless or hostile input gets through the gateway: a 400 naming the field, never a 500."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.e2e.conftest import PASSWORD

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"}


def assert_names_field(response: httpx.Response, field: str) -> None:
    """400 INVALID_ARGUMENT whose message and BadRequest detail both name `field`."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == "INVALID_ARGUMENT" and body["message"].startswith(f"{field}: ")
    violations = [v for d in body.get("details", []) for v in d.get("fieldViolations", [])]
    assert [v["field"] for v in violations] == [field], body


def event(**fields) -> dict:
    at = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"eventId": uuid.uuid4().hex, "name": "page_view", "eventTime": at, **fields}


@pytest.mark.parametrize(
    "path, body, field",
    [
        (
            "/v1/users",
            {"username": "nul_mail", "email": "a\u0000@example.com", "password": PASSWORD},
            "email",
        ),
        (
            "/v1/users",
            {"username": "esc", "displayName": "\u001b[31mred", "password": PASSWORD},
            "display_name",
        ),
        ("/v1/sessions", {"username": "ada\u0000", "password": PASSWORD}, "username"),
        (
            "/v1/analytics/events:batchCreate",
            {"events": [event(page="/feed\u0000")]},
            "events[0].page",
        ),
        (
            "/v1/analytics/events:batchCreate",
            {"events": [event(), event(referrer="https://x.org/\u0000")]},
            "events[1].referrer",
        ),
        (
            "/v1/analytics/events:batchCreate",
            {"events": [event(properties={"plan": "free\u0000"})]},
            "events[0].properties['plan']",
        ),
    ],
)
def test_control_characters_are_refused_naming_the_field(api, path, body, field):
    assert_names_field(api.post(path, json=body, headers=BROWSER), field)


def test_a_note_with_an_escape_sequence_is_refused(api, new_account):
    me = new_account()
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    night = {
        "startTime": (end - timedelta(hours=8)).isoformat().replace("+00:00", "Z"),
        "endTime": end.isoformat().replace("+00:00", "Z"),
        "note": "slept \u001b]0;owned\u0007",
    }
    assert_names_field(api.post("/v1/sleepEntries", headers=me.auth, json=night), "note")


@pytest.mark.parametrize(
    "end",
    ["0001-01-01T08:00:00Z", "1999-12-31T23:59:59Z"],
)
def test_nights_before_the_year_2000_are_refused(api, new_account, end):
    me = new_account()
    finish = datetime.fromisoformat(end)
    night = {
        "startTime": (finish - timedelta(hours=7)).isoformat().replace("+00:00", "Z"),
        "endTime": end,
    }
    assert_names_field(api.post("/v1/sleepEntries", headers=me.auth, json=night), "end_time")


@pytest.mark.parametrize(
    "path, params, field",
    [
        ("/v1/leaderboards/nights/daily", {"date": "9000-01-01"}, "date"),
        ("/v1/leaderboards/nights/weekly", {"date": "9999-12-31"}, "date"),
        ("/v1/leaderboards/nights/monthly:aroundMe", {"date": "0001-01-01"}, "date"),
        (
            "/v1/users/me/sleepStats",
            {"startDate": "0001-01-01", "endDate": "2026-11-01"},
            "start_date",
        ),
        ("/v1/users/me/sleepStats", {"endDate": "0001-01-05"}, "end_date"),
        ("/v1/users/me/sleepTrend", {"endDate": "9999-12-31"}, "end_date"),
    ],
)
def test_dates_outside_what_can_hold_nights_are_refused(api, new_account, path, params, field):
    me = new_account()
    assert_names_field(api.get(path, headers=me.auth, params=params), field)


def test_an_update_that_names_nothing_to_change_is_refused(api, new_account):
    """Found by trying: the body a generic client sends (the message wrapped, the mask inside)
    changed nothing and answered 200; so did a body with nothing in it."""
    me = new_account()
    wrapped = {"user": {"bio": "owl"}, "updateMask": "bio"}
    assert_names_field(api.patch("/v1/users/me", headers=me.auth, json=wrapped), "user")
    assert_names_field(api.patch("/v1/users/me", headers=me.auth, json={}), "update_mask")
    assert api.get("/v1/users/me", headers=me.auth).json().get("bio", "") == ""


def test_unknown_fields_and_query_parameters_are_refused_naming_them(api, new_account):
    """Found by trying: the transcoder dropped them without a word, so a typo answered 200."""
    me = new_account()
    body = {"bio": "owl", "sleepGaol": "1s"}
    typo = api.patch("/v1/users/me", headers=me.auth, params={"updateMask": "bio"}, json=body)
    assert_names_field(typo, "sleepGaol")
    assert "sleepGoal" in typo.json()["message"], "the message lists the fields there are"
    assert_names_field(api.get("/v1/feed", headers=me.auth, params={"pagesize": 5}), "pagesize")
    night = {"startTime": "2026-11-20T14:30:00Z", "endTime": {"seconds": 1}}
    assert_names_field(api.post("/v1/sleepEntries", headers=me.auth, json=night), "end_time")
    assert api.get("/v1/users/me", headers=me.auth).json().get("bio", "") == ""


def test_one_client_address_cannot_use_up_the_intake_for_everyone(gateway):
    """Found by reading: one bucket for the whole gateway, so one client could 429 everyone.
    Each address may send 600 intake calls a minute (ZENTRY_GATEWAY_CLIENT_EVENTS), as a
    bucket of 150 (a quarter of them) refilled by 10 a second."""
    batch = {"events": [event()]}

    def send_from(address: str, at_most: int) -> tuple[int, float]:
        """Calls answered 200 before the first 429 (or `at_most`), and the seconds taken."""
        transport = httpx.HTTPTransport(local_address=address)
        started = time.monotonic()
        with httpx.Client(base_url=gateway, transport=transport, timeout=20) as client:
            for sent in range(at_most):
                answer = client.post(
                    "/v1/analytics/events:batchCreate", json=batch, headers=BROWSER
                )
                if answer.status_code == 429:
                    return sent, time.monotonic() - started
                assert answer.status_code == 200, answer.text
        return at_most, time.monotonic() - started

    accepted, seconds = send_from("127.0.0.3", 3000)
    assert 150 <= accepted <= 150 + 10 * seconds + 1, (accepted, seconds)
    assert send_from("127.0.0.4", 3)[0] == 3, "another address is not limited by it"


def test_a_client_cannot_make_the_gateways_answers_leave_their_shape(api):
    """Found in review: the header the body check marks its answers with let a client turn
    Envoy's own 401s into plain text labelled JSON."""
    response = api.get(
        "/v1/feed", headers={"Authorization": "Bearer nope", "x-zentry-body-check": "1"}
    )
    assert response.status_code == 401 and response.json()["status"] == "UNAUTHENTICATED"


def test_a_transcoder_error_quoting_the_value_back_is_still_json(api, new_account):
    response = api.get("/v1/feed", headers=new_account().auth, params={"pageSize": '"x",}'})
    assert_names_field(response, "page_size")
