"""Recording nights over REST, through Envoy, to two sleep service instances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from tests.support import eventually

#: Midnight UTC a month ago: every night here ended well in the past.
BASE = (datetime.now(UTC) - timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def night(day: int, hours: float = 8, **extra) -> dict:
    """A night ending at 07:00 UTC on BASE + `day` days, lasting `hours`."""
    end = BASE + timedelta(days=day, hours=7)
    return {"startTime": iso(end - timedelta(hours=hours)), "endTime": iso(end), **extra}


def day(n: int) -> str:
    return (BASE + timedelta(days=n)).date().isoformat()


def entries_of(api: httpx.Client, account, username: str = "me", **params) -> list[dict]:
    response = api.get(f"/v1/users/{username}/sleepEntries", headers=account.auth, params=params)
    assert response.status_code == 200, response.text
    return response.json().get("sleepEntries", [])


def create(api: httpx.Client, account, body: dict) -> dict:
    response = api.post("/v1/sleepEntries", headers=account.auth, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_record_and_read_a_night(api, new_account):
    owner = new_account(timeZone="America/St_Johns")
    end = BASE + timedelta(days=3, hours=2)  # 22:30 the day before in St. John's
    body = {
        "startTime": iso(end - timedelta(hours=7, minutes=30)),
        "endTime": iso(end),
        "quality": 4,
        "note": "  woke once  ",
        "tags": ["Travel", "travel", "late-dinner"],
    }
    entry = create(api, owner, body)
    assert entry["userId"] == owner.id
    assert entry["duration"] == f"{(7 * 60 + 30) * 60}s"
    assert entry["timeZone"] == "America/St_Johns", "the profile's zone when none is given"
    assert entry["sleepDate"] == day(2)
    assert (entry["quality"], entry["note"], entry["tags"]) == (
        4,
        "woke once",
        ["travel", "late-dinner"],
    )
    assert entry["createTime"] == entry["updateTime"]

    got = api.get(f"/v1/sleepEntries/{entry['id']}", headers=owner.auth)
    assert got.status_code == 200 and got.json() == entry

    given_zone = create(api, owner, night(5, timeZone="Pacific/Kiritimati"))
    assert given_zone["timeZone"] == "Pacific/Kiritimati"
    assert given_zone["sleepDate"] == day(5)  # 07:00 UTC is 21:00 the same day at UTC+14


def share_with_everyone(api: httpx.Client, owner, reader) -> None:
    """The owner shares their nights with everyone; returns once the sleep service has
    learnt of it (from the user service's event), as `reader` sees."""
    response = api.patch("/v1/users/me", headers=owner.auth, json={"nightsVisibleTo": "everyone"})
    assert response.status_code == 200, response.text
    eventually(
        lambda: (
            api.get(f"/v1/users/{owner.username}/sleepEntries", headers=reader.auth).status_code
            == 200
        ),
        timeout=20,
        what="the sleep service learnt that the owner shares with everyone",
    )


def test_list_newest_first_with_a_date_range_and_pages(api, new_account):
    owner, reader = new_account(), new_account()
    share_with_everyone(api, owner, reader)
    ids = {n: create(api, owner, night(n))["id"] for n in range(1, 6)}

    seen, token, pages = [], "", 0
    while True:
        params = {"pageSize": 2, **({"pageToken": token} if token else {})}
        response = api.get(
            f"/v1/users/{owner.username}/sleepEntries", headers=reader.auth, params=params
        )
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [entry["id"] for entry in page.get("sleepEntries", [])]
        pages += 1
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert pages == 3
    assert seen == [ids[n] for n in (5, 4, 3, 2, 1)], "newest first, no gaps, no repeats"

    ranged = entries_of(api, owner, startDate=day(2), endDate=day(4))
    assert [e["sleepDate"] for e in ranged] == [day(4), day(3), day(2)]
    assert [e["id"] for e in entries_of(api, owner, startDate=day(5))] == [ids[5]]
    assert [e["id"] for e in entries_of(api, owner, endDate=day(1))] == [ids[1]]

    first = api.get("/v1/users/me/sleepEntries", headers=owner.auth, params={"pageSize": 1}).json()
    other_filter = api.get(
        "/v1/users/me/sleepEntries",
        headers=owner.auth,
        params={"pageToken": first["nextPageToken"], "startDate": day(2)},
    )
    assert other_filter.status_code == 400 and "page_token" in other_filter.json()["message"]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"startDate": "2026-13-01"}, "start_date"),
        ({"endDate": "last week"}, "end_date"),
        ({"startDate": "2026-11-02", "endDate": "2026-11-01"}, "end_date"),
        ({"pageSize": -1}, "page_size"),
        ({"pageToken": "not-a-token"}, "page_token"),
    ],
)
def test_bad_list_filters(api, new_account, params, field):
    owner = new_account()
    response = api.get("/v1/users/me/sleepEntries", headers=owner.auth, params=params)
    assert response.status_code == 400
    assert response.json()["status"] == "INVALID_ARGUMENT"
    assert response.json()["message"].startswith(f"{field}: ")


def test_listing_an_unknown_user_is_404(api, new_account):
    response = api.get("/v1/users/nobody_by_that_name/sleepEntries", headers=new_account().auth)
    assert response.status_code == 404 and response.json()["status"] == "NOT_FOUND"


def test_update_with_and_without_a_mask(api, new_account):
    owner = new_account(timeZone="Asia/Tokyo")
    entry = create(api, owner, night(1, quality=2, note="restless"))
    url = f"/v1/sleepEntries/{entry['id']}"

    later_end = BASE + timedelta(days=1, hours=16)  # 01:00 the next day in Tokyo
    masked = api.patch(
        url,
        headers=owner.auth,
        params={"updateMask": "endTime,note"},
        json={"endTime": iso(later_end), "note": "", "quality": 5},
    )
    assert masked.status_code == 200, masked.text
    changed = masked.json()
    assert changed["endTime"] == iso(later_end)
    assert changed["duration"] == f"{17 * 3600}s"
    assert changed["sleepDate"] == day(2)
    assert changed["note"] == "", "a masked field given empty is cleared"
    assert changed["quality"] == 2, "a field outside the mask is kept"
    assert changed["updateTime"] > entry["updateTime"]

    unmasked = api.patch(url, headers=owner.auth, json={"quality": 5, "tags": ["Nap"]})
    assert unmasked.status_code == 200, unmasked.text
    assert (unmasked.json()["quality"], unmasked.json()["tags"]) == (5, ["nap"])
    assert unmasked.json()["endTime"] == iso(later_end)

    rezoned = api.patch(url, headers=owner.auth, json={"timeZone": "America/Los_Angeles"})
    assert rezoned.json()["sleepDate"] == day(1), "16:00 UTC is 08:00 the same day in LA"

    output_only = api.patch(url, headers=owner.auth, params={"updateMask": "sleepDate"}, json={})
    assert output_only.status_code == 400 and "sleep_date cannot be changed" in output_only.text
    assert api.get(url, headers=owner.auth).json() == rezoned.json()

    home = api.patch(url, headers=owner.auth, params={"updateMask": "timeZone"}, json={})
    assert home.json()["timeZone"] == "Asia/Tokyo", "an empty zone in the mask means the profile's"


def test_only_the_owner_changes_or_deletes_an_entry(api, new_account):
    owner, other = new_account(), new_account()
    entry = create(api, owner, night(1, quality=3))
    url = f"/v1/sleepEntries/{entry['id']}"

    # Shared with followers (the default): to anyone else the entry is not there.
    for hidden in (
        api.patch(url, headers=other.auth, json={"quality": 1}),
        api.delete(url, headers=other.auth),
    ):
        assert hidden.status_code == 404 and hidden.json()["status"] == "NOT_FOUND"
    share_with_everyone(api, owner, other)
    patched = api.patch(url, headers=other.auth, json={"quality": 1})
    assert patched.status_code == 403 and patched.json()["status"] == "PERMISSION_DENIED"
    deleted = api.delete(url, headers=other.auth)
    assert deleted.status_code == 403
    assert api.get(url, headers=owner.auth).json() == entry

    missing = "/v1/sleepEntries/00000000-0000-4000-8000-000000000000"
    for response in (
        api.get(missing, headers=owner.auth),
        api.patch(missing, headers=owner.auth, json={"quality": 1}),
        api.delete(missing, headers=owner.auth),
    ):
        assert response.status_code == 404 and response.json()["status"] == "NOT_FOUND"
    malformed = api.get("/v1/sleepEntries/last-night", headers=owner.auth)
    assert malformed.status_code == 400 and malformed.json()["message"].startswith("id: ")


def test_delete(api, new_account):
    owner = new_account()
    entry = create(api, owner, night(1))
    url = f"/v1/sleepEntries/{entry['id']}"
    response = api.delete(url, headers=owner.auth)
    assert response.status_code == 200 and response.json() == {}
    assert api.get(url, headers=owner.auth).status_code == 404
    assert api.delete(url, headers=owner.auth).status_code == 404
    assert entries_of(api, owner) == []
    assert create(api, owner, night(1))["id"] != entry["id"], "the night is free again"


def test_an_update_may_not_overlap_another_night(api, new_account):
    owner = new_account()
    first, second = create(api, owner, night(1)), create(api, owner, night(2))
    url = f"/v1/sleepEntries/{second['id']}"
    morning = {  # 05:00 to 09:00 on day 1: the end of the first night
        "startTime": iso(BASE + timedelta(days=1, hours=5)),
        "endTime": iso(BASE + timedelta(days=1, hours=9)),
    }
    response = api.patch(url, headers=owner.auth, json=morning)
    assert response.status_code == 400 and response.json()["status"] == "FAILED_PRECONDITION"
    assert first["id"] in response.json()["message"]
    assert api.get(url, headers=owner.auth).json() == second


FUTURE = datetime.now(UTC) + timedelta(hours=1)


@pytest.mark.parametrize(
    "body, status, code, says",
    [
        (
            night(9) | {"endTime": night(8)["endTime"]},
            400,
            "INVALID_ARGUMENT",
            "end_time: must be after",
        ),
        (night(9, hours=0.05), 400, "INVALID_ARGUMENT", "at least 10 min"),
        (night(9, hours=25), 400, "INVALID_ARGUMENT", "at most 24 h"),
        (
            {"startTime": iso(FUTURE - timedelta(hours=8)), "endTime": iso(FUTURE)},
            400,
            "INVALID_ARGUMENT",
            "in the future",
        ),
        (night(1, hours=2), 400, "FAILED_PRECONDITION", "overlaps your entry"),
        (night(9, quality=6), 400, "INVALID_ARGUMENT", "quality: must be 1 to 5"),
        (night(9, note="z" * 501), 400, "INVALID_ARGUMENT", "note: must be at most 500"),
        (
            night(9, timeZone="Mars/Olympus_Mons"),
            400,
            "INVALID_ARGUMENT",
            "time_zone: 'Mars/Olympus_Mons'",
        ),
        (night(9, tags=["two words"]), 400, "INVALID_ARGUMENT", "tags: 'two words' is not a tag"),
        ({"endTime": night(9)["endTime"]}, 400, "INVALID_ARGUMENT", "start_time: is required"),
        (night(9, requestId="has spaces in it"), 400, "INVALID_ARGUMENT", "request_id:"),
        (
            night(9, requestId="baseline", quality=1),
            409,
            "ALREADY_EXISTS",
            "already used for a different night",
        ),
    ],
    ids=[
        "end-before-start",
        "too-short",
        "too-long",
        "future",
        "overlap",
        "quality",
        "note-length",
        "unknown-zone",
        "bad-tag",
        "missing-start",
        "bad-request-id",
        "request-id-reused",
    ],
)
def test_bad_input_is_refused_and_changes_nothing(api, new_account, body, status, code, says):
    owner = new_account()
    baseline = create(api, owner, night(1, requestId="baseline"))
    response = api.post("/v1/sleepEntries", headers=owner.auth, json=body)
    assert response.status_code == status, response.text
    assert response.json()["status"] == code
    assert says in response.json()["message"]
    if code == "FAILED_PRECONDITION":
        assert baseline["id"] in response.json()["message"], "the overlapping entry is named"
    assert entries_of(api, owner) == [baseline]


def test_malformed_requests(api, new_account):
    owner = new_account()
    not_a_time = api.post(
        "/v1/sleepEntries", headers=owner.auth, json=night(1) | {"startTime": "yesterday"}
    )
    assert not_a_time.status_code == 400
    no_token = api.post("/v1/sleepEntries", json=night(1))
    assert no_token.status_code == 401
    assert entries_of(api, owner) == []


def test_a_retried_create_records_one_night(api, new_account):
    owner = new_account()
    body = night(1, requestId="7d0c9a2e-1f4b-4c1e-9d1a-2b3c4d5e6f70", quality=4)
    first = create(api, owner, body)
    again = create(api, owner, body)
    assert again == first
    assert [e["id"] for e in entries_of(api, owner)] == [first["id"]]


def test_a_user_the_directory_has_not_learnt_of_is_asked_of_the_user_service(
    api, new_account, settings
):
    """Delete a user from the sleep service's copy: reads and creates still find them."""
    owner, reader = new_account(timeZone="Pacific/Kiritimati"), new_account()
    with psycopg.connect(settings.postgres.dsn("zentry_sleep"), autocommit=True) as conn:
        eventually(
            lambda: conn.execute("SELECT 1 FROM users WHERE id = %s", (owner.id,)).fetchone(),
            timeout=20,
            what="the sleep service learnt of the new user from its event",
        )
        conn.execute("DELETE FROM users WHERE id = %s", (owner.id,))
    entry = create(api, owner, night(1))
    assert entry["timeZone"] == "Pacific/Kiritimati"
    doubted = api.get(f"/v1/users/{owner.username}/sleepEntries", headers=reader.auth)
    assert doubted.status_code == 403, "a setting the copy does not know refuses, never shows"
    listed = entries_of(api, owner, owner.username.upper())
    assert [e["id"] for e in listed] == [entry["id"]]
