"""The feed over REST, through Envoy, to two feed service instances fed by real events.

Three readers follow a celebrity (the e2e threshold is 3 followers) and two of
them follow each other; nights recorded through the sleep API must reach the
right feeds, in order, within a deadline.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.e2e.test_users_rest import error_of
from tests.support import eventually

#: Nights recorded here end on distinct days two weeks ago, so they never overlap.
BASE = (datetime.now(UTC) - timedelta(days=14)).replace(hour=7, minute=0, second=0, microsecond=0)


def record(api: httpx.Client, account, day: int) -> str:
    end = BASE + timedelta(days=day)
    body = {
        "startTime": (end - timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quality": 4,
    }
    response = api.post("/v1/sleepEntries", headers=account.auth, json=body)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def feed(api: httpx.Client, account, **params) -> dict:
    response = api.get("/v1/feed", headers=account.auth, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def feed_ids(api: httpx.Client, account) -> list[str]:
    return [item["entry"]["id"] for item in feed(api, account).get("items", [])]


def follow(api: httpx.Client, reader, author) -> None:
    response = api.post(f"/v1/users/{author.username}:follow", headers=reader.auth, json={})
    assert response.status_code == 200, response.text


def test_entries_reach_the_right_feeds_in_order(api, new_account):
    alice, bob, carol = new_account(), new_account(), new_account()
    star = new_account(displayName="The Star")
    for reader in (alice, bob, carol):
        follow(api, reader, star)
    follow(api, alice, bob)
    follow(api, bob, alice)
    eventually(
        lambda: api.get(f"/v1/users/{star.username}", headers=alice.auth).json()["celebrity"],
        timeout=10,
        what="the star is a celebrity",
    )
    for reader in (alice, bob, carol):
        assert feed_ids(api, reader) == []

    star_1 = record(api, star, 1)
    alice_1 = record(api, alice, 2)
    bob_1 = record(api, bob, 3)
    star_2 = record(api, star, 4)

    expected = {
        alice.username: [star_2, bob_1, star_1],
        bob.username: [star_2, alice_1, star_1],
        carol.username: [star_2, star_1],
    }
    for reader in (alice, bob, carol):
        eventually(
            lambda reader=reader: feed_ids(api, reader) == expected[reader.username],
            timeout=20,
            what=f"{reader.username}'s feed is {expected[reader.username]}",
        )
    first = feed(api, alice)["items"][0]
    assert first["author"] == {
        "userId": star.id,
        "username": star.username,
        "displayName": "The Star",
    }
    assert first["entry"]["userId"] == star.id and first["entry"]["quality"] == 4

    pages, token = [], ""
    while True:
        page = feed(api, alice, pageSize=1, pageToken=token)
        pages += [item["entry"]["id"] for item in page["items"]]
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert pages == expected[alice.username]


def test_bad_feed_requests_are_refused_with_a_reason(api, new_account):
    reader = new_account()
    status, code, message = error_of(
        api.get("/v1/feed", headers=reader.auth, params={"pageToken": "not-a-token"})
    )
    assert (status, code) == (400, "INVALID_ARGUMENT") and "page_token" in message
    status, code, message = error_of(
        api.get("/v1/feed", headers=reader.auth, params={"pageSize": -1})
    )
    assert (status, code) == (400, "INVALID_ARGUMENT") and "page_size" in message
    assert api.get("/v1/feed").status_code == 401


def whole_feed(api: httpx.Client, account, size: int) -> list[str]:
    ids, token = [], ""
    while True:
        page = feed(api, account, pageSize=size, pageToken=token)
        ids += [item["entry"]["id"] for item in page.get("items", [])]
        token = page.get("nextPageToken", "")
        if not token:
            return ids


def test_a_full_timeline_still_pages_to_the_oldest_night_after_a_delete_and_an_unfollow(
    api, new_account
):
    reader, ada, bob = new_account(), new_account(), new_account()
    follow(api, reader, ada)
    follow(api, reader, bob)
    assert feed_ids(api, reader) == []  # a reader now: fan-out writes to their timeline
    adas = [record(api, ada, day) for day in range(1, 8)]
    bobs = [record(api, bob, day) for day in range(1, 7)]
    everything = [*reversed(adas), *reversed(bobs)]  # recorded later, newer in the feed
    eventually(
        lambda: set(whole_feed(api, reader, 4)) == set(everything),
        timeout=20,
        what="all 13 nights reach the feed (its timeline holds 10)",
    )
    newest_first = whole_feed(api, reader, 4)

    response = api.delete(f"/v1/sleepEntries/{bobs[-1]}", headers=bob.auth)
    assert response.status_code == 200, response.text
    left = [entry for entry in newest_first if entry != bobs[-1]]
    eventually(
        lambda: whole_feed(api, reader, 2) == left,
        timeout=20,
        what="the feed loses the deleted night and keeps every older one",
    )

    response = api.post(f"/v1/users/{bob.username}:unfollow", headers=reader.auth, json={})
    assert response.status_code == 200, response.text
    eventually(
        lambda: whole_feed(api, reader, 3) == [e for e in left if e in adas],
        timeout=20,
        what="after unfollowing bob, every one of ada's nights is still there",
    )
