"""Leaderboards over REST, through Envoy, fed by nights recorded through the sleep API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.e2e.test_feed_rest import follow
from tests.e2e.test_users_rest import error_of
from tests.support import eventually

#: A day of its own for this module: nine days ago, 07:00 UTC.
DAY = (datetime.now(UTC) - timedelta(days=9)).replace(hour=7, minute=0, second=0, microsecond=0)


def record(api: httpx.Client, account, hours: float) -> None:
    body = {
        "startTime": (DAY - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endTime": DAY.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    response = api.post("/v1/sleepEntries", headers=account.auth, json=body)
    assert response.status_code == 200, response.text


def board(api: httpx.Client, account, path: str, **params) -> dict:
    response = api.get(f"/v1/leaderboards/{path}", headers=account.auth, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_nights_show_up_on_the_right_boards(api, new_account):
    """Best shares with everyone, I chose the global boards, worst shares with followers
    (the default): the global board ranks best and me; my following board all three."""
    me, best, worst = new_account(timeZone="UTC"), new_account(), new_account()
    for account, fields in (
        (best, {"nightsVisibleTo": "everyone"}),
        (me, {"showOnGlobalBoards": True}),
    ):
        response = api.patch("/v1/users/me", headers=account.auth, json=fields)
        assert response.status_code == 200, response.text
    for account, hours in ((me, 7), (best, 9), (worst, 5)):
        record(api, account, hours)
    follow(api, me, best)
    follow(api, me, worst)
    day = DAY.date().isoformat()

    def names(path: str, **params) -> list[str]:
        found = board(api, me, path, date=day, **params).get("standings", [])
        return [s["username"] for s in found]

    ours = [best.username, me.username, worst.username]

    eventually(
        lambda: names("total-duration/daily", scope="following") == ours,
        timeout=20,
        what=f"the following board of {day} is {ours}",
    )

    def ranked() -> list[str]:
        everyone, token = [], ""
        while True:  # the global board of that day, page by page
            page = board(api, me, "total-duration/daily", date=day, pageSize=100, pageToken=token)
            everyone += [s["username"] for s in page.get("standings", [])]
            token = page.get("nextPageToken", "")
            if not token:
                return [n for n in everyone if n in ours]

    eventually(
        lambda: ranked() == [best.username, me.username],
        timeout=20,
        what="the global board ranks those who chose it, and not worst",
    )
    page = board(api, me, "total-duration/daily", date=day, scope="following", pageSize=2)
    assert [s["rank"] for s in page["standings"]] == ["1", "2"] and page["nextPageToken"]
    window = page["window"]
    assert (window["kind"], window["id"], window["timeZone"]) == ("daily", day, "UTC")
    assert window["startTime"] == f"{day}T00:00:00Z" and not window.get("current", False)

    around = board(api, me, "total-duration/daily:aroundMe", date=day, scope="following", radius=1)
    assert around["me"]["username"] == me.username and around["me"]["rank"] == "2"
    assert around["me"]["totalDuration"] == f"{7 * 3600}s"
    assert [s["username"] for s in around["standings"]] == ours


def test_bad_board_requests_are_400_naming_the_field(api, new_account):
    account = new_account()
    for path, params, field in [
        ("longest/daily", {}, "metric"),
        ("nights/yearly", {}, "window"),
        ("nights/daily", {"scope": "friends"}, "scope"),
        ("nights/daily", {"date": "22.11.2026"}, "date"),
        ("nights/daily:aroundMe", {"radius": 99}, "radius"),
    ]:
        response = api.get(f"/v1/leaderboards/{path}", headers=account.auth, params=params)
        status, code, message = error_of(response)
        assert (status, code) == (400, "INVALID_ARGUMENT") and message.startswith(field), message
    assert api.get("/v1/leaderboards/nights/daily").status_code == 401


def test_a_streak_board_counts_nights_in_a_row_at_ones_goal(api, new_account):
    me = new_account(timeZone="UTC")  # the default goal: 8 hours
    for days_before, hours in ((5, 8), (4, 8.5), (3, 9), (2, 6), (1, 8)):
        end = DAY - timedelta(days=days_before)
        body = {
            "startTime": (end - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        response = api.post("/v1/sleepEntries", headers=me.auth, json=body)
        assert response.status_code == 200, response.text

    def mine() -> dict | None:
        found = board(api, me, "streak/all-time", scope="following").get("standings", [])
        return next((s for s in found if s["username"] == me.username), None)

    def all_five_counted() -> dict | None:
        standing = mine()
        return standing if standing and standing.get("nights") == "5" else None

    # The streak is 3 as soon as the first three nights count: wait for all five.
    standing = eventually(all_five_counted, timeout=20, what="the five nights on the board")
    assert standing["streak"] == "3", "three nights at 8 hours, then a short one, then one"
    assert standing["rank"] == "1"
    status, code, message = error_of(api.get("/v1/leaderboards/streaks/weekly", headers=me.auth))
    assert (status, code) == (400, "INVALID_ARGUMENT") and "streak" in message
