"""An account's data, taken away by its owner: GET /v1/users/me:export through Envoy."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg

from tests.e2e.conftest import PASSWORD, TEST_ENV, consumers_stopped
from tests.e2e.test_analytics_rest import BROWSER
from tests.e2e.test_privacy import follow, patch_me
from tests.e2e.test_users_rest import error_of
from tests.support import eventually

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


def test_a_deleted_account_leaves_every_read_model_and_no_replay_brings_it_back(
    api, new_account, mesh, settings
):
    gone, friend = new_account(), new_account()
    patch_me(api, gone, nightsVisibleTo="everyone")
    end = END + timedelta(days=3)
    night = {"startTime": (end - timedelta(hours=8)).isoformat(), "endTime": end.isoformat()}
    entry = api.post("/v1/sleepEntries", headers=gone.auth, json=night).json()
    follow(api, gone, friend.username)
    follow(api, friend, gone.username)
    event = {
        "eventId": f"e-{gone.id}",
        "name": "page_view",
        "eventTime": datetime.now(UTC).isoformat(),
        "page": "/feed",
    }
    tracked = api.post(
        "/v1/analytics/events:batchCreate", headers=gone.auth | BROWSER, json={"events": [event]}
    )
    assert tracked.status_code == 200, tracked.text
    day = end.date().isoformat()

    def on_board() -> bool:  # among those the friend follows: other tests' nights crowd "global"
        params = {"date": day, "pageSize": 100, "scope": "following"}
        board = api.get("/v1/leaderboards/nights/daily", headers=friend.auth, params=params)
        return gone.id in {s["userId"] for s in board.json().get("standings", [])}

    def in_feed() -> bool:
        feed = api.get("/v1/feed", headers=friend.auth, params={"pageSize": 100}).json()
        return entry["id"] in {item["entry"]["id"] for item in feed.get("items", [])}

    eventually(lambda: on_board() and in_feed(), timeout=20, what="the nights were counted")
    eventually(lambda: all(rows_of(settings, gone.id).values()), timeout=20, what="kept by all")

    wrong = api.request("DELETE", "/v1/users/me", headers=gone.auth, json={"password": "nope-123"})
    assert error_of(wrong)[:2] == (400, "INVALID_ARGUMENT") and "password" in error_of(wrong)[2]
    deleted = api.request("DELETE", "/v1/users/me", headers=gone.auth, json={"password": PASSWORD})
    assert deleted.status_code == 200, deleted.text

    def forgotten() -> bool:
        return not on_board() and not in_feed() and not any(rows_of(settings, gone.id).values())

    eventually(forgotten, timeout=20, what="every read model forgot the account")
    assert api.get(f"/v1/users/{gone.username}", headers=friend.auth).status_code == 404
    assert api.get("/v1/users/me/followers", headers=friend.auth).json().get("users", []) == []
    assert api.get("/v1/users/me", headers=friend.auth).json().get("followingCount", 0) == 0
    late = api.post("/v1/sleepEntries", headers=gone.auth, json=night | {"timeZone": "UTC"})
    assert error_of(late)[:2] == (401, "UNAUTHENTICATED"), "a live token records nothing"

    # The log still holds every event of theirs: a replay of every read model skips them.
    with consumers_stopped(mesh):
        env = mesh.env() | TEST_ENV
        for service in ("feed", "leaderboard", "analytics"):
            done = subprocess.run(
                [sys.executable, "-m", f"services.{service}.replay"],
                cwd=settings.repo_dir,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stdout + done.stderr
    assert forgotten(), rows_of(settings, gone.id)


#: Where each service keeps something of a user, as (database, table, user column).
KEPT = [
    ("zentry_sleep", "sleep_entries", "user_id"),
    ("zentry_sleep", "users", "id"),
    ("zentry_feed", "entries", "author_id"),
    ("zentry_feed", "follows", "follower_id"),
    ("zentry_feed", "follows", "followee_id"),
    ("zentry_leaderboard", "scores", "user_id"),
    ("zentry_leaderboard", "users", "user_id"),
    ("zentry_analytics", "nights", "user_id"),
    ("zentry_analytics", "sleepers", "user_id"),
    ("zentry_analytics", "raw_events", "user_id"),
]


def rows_of(settings, user_id: str) -> dict[str, int]:
    """How many rows each read model keeps of the user."""
    counts = {}
    for database, table, column in KEPT:
        with psycopg.connect(settings.postgres.dsn(database), autocommit=True) as conn:
            found = conn.execute(
                f"SELECT count(*) FROM {table} WHERE {column}::text = %s", (user_id,)
            ).fetchone()
        counts[f"{database}.{table}.{column}"] = found[0]
    return counts
