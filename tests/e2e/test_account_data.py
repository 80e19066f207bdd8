"""An account's data, taken away by its owner: GET /v1/users/me:export through Envoy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.e2e.test_privacy import follow, patch_me
from tests.e2e.test_users_rest import error_of

END = (datetime.now(UTC) - timedelta(days=5)).replace(hour=6, minute=0, second=0, microsecond=0)


def test_an_export_holds_the_profile_every_setting_night_and_follow(api, new_account):
    me, friend, fan, asker = new_account(), new_account(), new_account(), new_account()
    nights = []
    for day in (2, 1):
        end = END + timedelta(days=day)
        body = {
            "startTime": (end - timedelta(hours=7)).isoformat(),
            "endTime": end.isoformat(),
            "note": f"night {day}",
        }
        created = api.post("/v1/sleepEntries", headers=me.auth, json=body)
        assert created.status_code == 200, created.text
        nights.append(created.json())
    follow(api, me, friend.username)
    follow(api, fan, me.username)
    patch_me(api, me, nightsVisibleTo="onlyMe", approveFollowers=True, bio="asleep")
    assert follow(api, asker, me.username)["requested"] is True

    response = api.get("/v1/users/me:export", headers=me.auth)
    assert response.status_code == 200, response.text
    export = response.json()
    profile = export["profile"]
    assert (profile["username"], profile["email"], profile["bio"]) == (
        me.username,
        me.email,
        "asleep",
    )
    assert (profile["nightsVisibleTo"], profile["approveFollowers"]) == ("onlyMe", True)
    assert export["nights"] == nights, "every night, newest first, as the sleep API shows them"
    assert export["following"] == [friend.username]
    assert export["followers"] == [fan.username] and not export.get("followersTruncated")
    assert [r["requester"]["username"] for r in export["followRequests"]] == [asker.username]
    assert export["exportTime"]


def test_only_the_owner_exports_an_account(api, new_account):
    me, other = new_account(), new_account()
    theirs = api.get(f"/v1/users/{me.username}:export", headers=other.auth)
    assert error_of(theirs)[:2] == (403, "PERMISSION_DENIED")
    assert api.get("/v1/users/me:export").status_code == 401
