"""Who sees whose nights, over REST through Envoy: every kind of viewer, every owner setting,
every endpoint that shows another person's data; and follow requests."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.e2e.test_analytics_rest import grant_admin, log_in
from tests.e2e.test_users_rest import error_of

VIEWERS = ("self", "follower", "pending", "rejected", "stranger", "admin", "nobody")
#: Who may see an owner's nights (and follow lists), by the owner's nightsVisibleTo. An
#: admin is a stranger here; "nobody" sends no token.
SEES = {
    "everyone": {"self", "follower", "pending", "rejected", "stranger", "admin"},
    "followers": {"self", "follower"},
    "onlyMe": {"self"},
}
REFUSALS = {
    "nights": "This person's nights are not shared with you.",
    "followers": "This account shares its follows only with the people it lets see its nights.",
    "following": "This account shares its follows only with the people it lets see its nights.",
}
END = (datetime.now(UTC) - timedelta(days=3)).replace(hour=7, minute=0, second=0, microsecond=0)


def patch_me(api: httpx.Client, account, **fields) -> dict:
    response = api.patch("/v1/users/me", headers=account.auth, json=fields)
    assert response.status_code == 200, response.text
    return response.json()


def follow(api: httpx.Client, account, username: str) -> dict:
    response = api.post(f"/v1/users/{username}:follow", headers=account.auth, json={})
    assert response.status_code == 200, response.text
    return response.json()


def requests_to(api: httpx.Client, owner) -> list[str]:
    response = api.get("/v1/users/me/followRequests", headers=owner.auth)
    assert response.status_code == 200, response.text
    return [r["requester"]["username"] for r in response.json().get("followRequests", [])]


@pytest.mark.parametrize("approve", [False, True], ids=["open", "approving"])
@pytest.mark.parametrize("setting", ["everyone", "followers", "onlyMe"])
def test_every_viewer_sees_exactly_what_the_owner_allows(api, new_account, setting, approve):
    owner = new_account()
    viewers = {name: new_account() for name in ("follower", "pending", "rejected", "stranger")}
    grant_admin(viewers.setdefault("admin", new_account()).username)
    viewers["admin"].token = log_in(api, viewers["admin"])["Authorization"].split()[1]
    viewers["self"] = owner

    patch_me(api, owner, approveFollowers=True)
    for name in ("follower", "pending", "rejected"):
        assert follow(api, viewers[name], owner.username)["requested"] is True
    assert sorted(requests_to(api, owner)) == sorted(
        viewers[n].username for n in ("follower", "pending", "rejected")
    )
    approve_url = f"/v1/users/me/followRequests/{viewers['follower'].username}:approve"
    assert api.post(approve_url, headers=owner.auth, json={}).status_code == 200
    reject_url = f"/v1/users/me/followRequests/{viewers['rejected'].username}:reject"
    assert api.post(reject_url, headers=owner.auth, json={}).status_code == 200
    assert requests_to(api, owner) == [viewers["pending"].username]
    profile = patch_me(api, owner, nightsVisibleTo=setting, approveFollowers=approve)
    assert (profile["nightsVisibleTo"], profile.get("approveFollowers", False)) == (
        setting,
        approve,
    )
    night = {
        "startTime": (END - timedelta(hours=8)).isoformat(),
        "endTime": END.isoformat(),
        "note": "a private note",
    }
    entry = api.post("/v1/sleepEntries", headers=owner.auth, json=night).json()

    def answers(viewer: str) -> dict[str, httpx.Response]:
        headers = viewers[viewer].auth if viewer != "nobody" else {}
        return {
            "entry": api.get(f"/v1/sleepEntries/{entry['id']}", headers=headers),
            "nights": api.get(f"/v1/users/{owner.username}/sleepEntries", headers=headers),
            "followers": api.get(f"/v1/users/{owner.username}/followers", headers=headers),
            "following": api.get(f"/v1/users/{owner.username}/following", headers=headers),
        }

    def on_board(viewer: str, scope: str) -> int | str:
        """Whether the owner stands on the viewer's board of the night's date ("listed" or
        "absent"), or the status of a refusal."""
        headers = viewers[viewer].auth if viewer != "nobody" else {}
        names, token = [], ""
        while True:
            params = {"date": END.date().isoformat(), "scope": scope, "pageSize": 100}
            page = api.get(
                "/v1/leaderboards/total-duration/daily",
                headers=headers,
                params=params | ({"pageToken": token} if token else {}),
            )
            if page.status_code != 200:
                return page.status_code
            names += [s["username"] for s in page.json().get("standings", [])]
            token = page.json().get("nextPageToken", "")
            if not token:
                return "listed" if owner.username in names else "absent"

    def cells() -> dict[tuple[str, str], int | str]:
        found = {
            (viewer, endpoint): response.status_code
            for viewer in VIEWERS
            for endpoint, response in answers(viewer).items()
        }
        for viewer in VIEWERS:
            for scope in ("global", "following"):
                found[viewer, scope] = on_board(viewer, scope)
            found[viewer, "feed"] = in_feed(viewer)
        return found

    def in_feed(viewer: str) -> int | str:
        headers = viewers[viewer].auth if viewer != "nobody" else {}
        feed = api.get("/v1/feed", headers=headers, params={"pageSize": 100})
        if feed.status_code != 200:
            return feed.status_code
        ids = [item["entry"]["id"] for item in feed.json().get("items", [])]
        return "listed" if entry["id"] in ids else "absent"

    def expected() -> dict[tuple[str, str], int | str]:
        denied = {"entry": 404, "nights": 403, "followers": 403, "following": 403}
        cells: dict[tuple[str, str], int | str] = {
            (viewer, endpoint): 401
            if viewer == "nobody"
            else 200
            if viewer in SEES[setting]
            else denied[endpoint]
            for viewer in VIEWERS
            for endpoint in denied
        }
        for viewer in VIEWERS:
            # The global board ranks those who share with everyone; one's following board
            # shows oneself and the people one follows who let one see them.
            ranked = setting == "everyone"
            followed = viewer == "self" or (viewer == "follower" and setting != "onlyMe")
            cells[viewer, "global"] = (
                401 if viewer == "nobody" else "listed" if ranked else "absent"
            )
            cells[viewer, "following"] = (
                401 if viewer == "nobody" else "listed" if followed else "absent"
            )
            # A feed shows the nights of those one follows (never one's own) who let one.
            fed = viewer == "follower" and setting != "onlyMe"
            cells[viewer, "feed"] = 401 if viewer == "nobody" else "listed" if fed else "absent"
        return cells

    # The services learn of settings and follows from the user service's events.
    want, deadline = expected(), time.monotonic() + 20
    while (got := cells()) != want and time.monotonic() < deadline:
        time.sleep(0.2)
    assert got == want, {
        cell: (found, want[cell]) for cell, found in got.items() if found != want[cell]
    }

    mine = api.get(
        "/v1/leaderboards/total-duration/daily:aroundMe",
        headers=owner.auth,
        params={"date": END.date().isoformat()},
    ).json()["me"]
    assert mine["totalDuration"] == f"{8 * 3600}s", "the owner always finds their own standing"

    for viewer in VIEWERS:
        for endpoint, response in answers(viewer).items():
            body = response.text
            if response.status_code == 200:
                continue
            # A refusal shows nothing of the owner: no entry, note or follower (an entry's
            # 404 repeats the id asked for, as for an id that is not there).
            secrets = ["a private note", viewers["follower"].username]
            if endpoint != "entry":
                secrets.append(entry["id"])
            for secret in secrets:
                assert secret not in body, (viewer, endpoint, body)
            if endpoint == "entry" and viewer != "nobody":
                assert error_of(response) == (
                    404,
                    "NOT_FOUND",
                    f"No sleep entry with id {entry['id']}.",
                )
            if viewer != "nobody" and endpoint != "entry":
                # The same words whatever the setting: a refusal does not tell which it is.
                assert error_of(response) == (403, "PERMISSION_DENIED", REFUSALS[endpoint])
    seen = answers("follower")["nights"]
    if seen.status_code == 200:
        assert [e["id"] for e in seen.json()["sleepEntries"]] == [entry["id"]]


def test_statistics_are_only_ever_the_callers_own(api, new_account):
    """No route takes another person's name: /v1/users/{name}/sleepStats is not an API."""
    owner, other = new_account(), new_account()
    for path in ("sleepStats", "sleepTrend"):
        response = api.get(f"/v1/users/{owner.username}/{path}", headers=other.auth)
        assert response.status_code == 404, response.text


def test_follow_requests_wait_for_the_owner(api, new_account):
    owner, asker, other = new_account(), new_account(), new_account()
    patch_me(api, owner, approveFollowers=True)

    asked = follow(api, asker, owner.username)
    assert asked["requested"] is True and asked["user"]["followerCount"] == 0
    assert follow(api, asker, owner.username)["requested"] is True, "asking again is no error"
    assert requests_to(api, owner) == [asker.username]
    listed = api.get(f"/v1/users/{owner.username}/followRequests", headers=asker.auth)
    assert error_of(listed)[:2] == (403, "PERMISSION_DENIED"), "only the owner lists them"

    # The asker withdraws, asks again; the owner approves (twice: a retry is no error).
    cancel = f"/v1/users/{owner.username}/followRequests/me"
    assert api.delete(cancel, headers=asker.auth).status_code == 200
    assert api.delete(cancel, headers=asker.auth).status_code == 200
    assert requests_to(api, owner) == []
    follow(api, asker, owner.username)
    approve = f"/v1/users/me/followRequests/{asker.username}:approve"
    for _ in range(2):
        approved = api.post(approve, headers=owner.auth, json={})
        assert approved.status_code == 200, approved.text
        assert approved.json()["follower"]["username"] == asker.username
    assert requests_to(api, owner) == []
    followers = api.get("/v1/users/me/followers", headers=owner.auth).json()["users"]
    assert [u["username"] for u in followers] == [asker.username]
    assert follow(api, asker, owner.username)["requested"] is False, "a follower follows"

    # Nothing to approve, someone else's request, one's own account: clear refusals.
    nothing = api.post(
        f"/v1/users/me/followRequests/{other.username}:approve", headers=owner.auth, json={}
    )
    assert error_of(nothing)[:2] == (404, "NOT_FOUND")
    theirs = api.post(approve, headers=other.auth, json={})  # asker asked owner, not other
    assert error_of(theirs)[:2] == (404, "NOT_FOUND")
    yourself = api.post(
        f"/v1/users/me/followRequests/{owner.username}:approve", headers=owner.auth, json={}
    )
    assert error_of(yourself)[:2] == (400, "INVALID_ARGUMENT")
    not_mine = api.post(
        f"/v1/users/{owner.username}/followRequests/{asker.username}:approve",
        headers=other.auth,
        json={},
    )
    assert error_of(not_mine)[:2] == (403, "PERMISSION_DENIED")
    someone_elses = api.delete(
        f"/v1/users/{owner.username}/followRequests/{asker.username}", headers=other.auth
    )
    assert error_of(someone_elses)[:2] == (403, "PERMISSION_DENIED")

    # Unfollowing withdraws a request too; a rejected asker may ask again.
    follow(api, other, owner.username)
    api.post(f"/v1/users/{owner.username}:unfollow", headers=other.auth, json={})
    assert requests_to(api, owner) == []
    follow(api, other, owner.username)
    reject = f"/v1/users/me/followRequests/{other.username}:reject"
    assert api.post(reject, headers=owner.auth, json={}).status_code == 200
    assert api.post(reject, headers=owner.auth, json={}).status_code == 200
    assert requests_to(api, owner) == []
    assert follow(api, other, owner.username)["requested"] is True


def test_a_setting_that_is_not_one_is_refused_naming_it(api, new_account):
    me = new_account()
    response = api.patch("/v1/users/me", headers=me.auth, json={"nightsVisibleTo": "friends"})
    status, code, message = error_of(response)[:3]
    assert (status, code) == (400, "INVALID_ARGUMENT") and "nights_visible_to" in message
    profile = api.get("/v1/users/me", headers=me.auth).json()
    assert profile["nightsVisibleTo"] == "followers", "the default, unchanged"
    assert not profile.get("approveFollowers") and not profile.get("showOnGlobalBoards")


def test_an_owner_removes_a_follower_who_then_sees_what_strangers_see(api, new_account):
    owner, follower = new_account(), new_account()
    follow(api, follower, owner.username)
    night = {"startTime": (END - timedelta(hours=6)).isoformat(), "endTime": END.isoformat()}
    entry = api.post("/v1/sleepEntries", headers=owner.auth, json=night).json()
    url = f"/v1/sleepEntries/{entry['id']}"

    def status() -> int:
        return api.get(url, headers=follower.auth).status_code

    deadline = time.monotonic() + 20
    while status() != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status() == 200, "a follower reads the night"

    removed = f"/v1/users/me/followers/{follower.username}"
    assert api.delete(removed, headers=owner.auth).status_code == 200
    assert api.delete(removed, headers=owner.auth).status_code == 200, "idempotent"
    followers = api.get("/v1/users/me/followers", headers=owner.auth).json()
    assert followers.get("users", []) == []
    deadline = time.monotonic() + 20
    while status() != 404 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status() == 404, "no longer a follower: the night is not there for them"
    yourself = api.delete(f"/v1/users/me/followers/{owner.username}", headers=owner.auth)
    assert error_of(yourself)[:2] == (400, "INVALID_ARGUMENT")
    theirs = api.delete(f"/v1/users/{follower.username}/followers/x_y_z", headers=owner.auth)
    assert error_of(theirs)[:2] == (403, "PERMISSION_DENIED")
