"""Analytics over REST, through Envoy: personal statistics fed by the sleep API, and product
events tracked by anyone and queried by admins only."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from tests.e2e.test_users_rest import error_of
from tests.support import eventually

BROWSER = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Safari/605.1.15"}
#: Nights of this module: ending at 07:00 UTC on the three days before last week.
END = (datetime.now(UTC) - timedelta(days=8)).replace(hour=7, minute=0, second=0, microsecond=0)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_sleep_stats_and_trend_follow_the_nights_recorded(api, new_account):
    me = new_account(timeZone="UTC")
    for days, hours in ((2, 6), (1, 7), (0, 8)):
        end = END - timedelta(days=days)
        body = {"startTime": stamp(end - timedelta(hours=hours)), "endTime": stamp(end)}
        assert api.post("/v1/sleepEntries", headers=me.auth, json=body).status_code == 200
    first, last = (END - timedelta(days=2)).date(), END.date()
    params = {"startDate": first.isoformat(), "endDate": last.isoformat()}

    def stats() -> dict:
        response = api.get("/v1/users/me/sleepStats", headers=me.auth, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    eventually(lambda: stats()["nightsLogged"] == 3, timeout=20, what="three nights counted")
    found = stats()
    assert found["averageDuration"] == "25200s" and found["medianDuration"] == "25200s"
    assert found["sleepGoal"] == "28800s" and found["sleepDebt"] == "10800s"  # 2 h + 1 h + 0
    assert found["bestNight"] == {"sleepDate": last.isoformat(), "duration": "28800s"}
    assert (found["currentStreak"], found["longestStreak"]) == (1, 1), "only the last met 8 h"
    assert len(found["weekdays"]) == 7
    trend = api.get("/v1/users/me/sleepTrend", headers=me.auth, params=params).json()
    assert [p["logged"] for p in trend["points"]] == [True, True, True]
    assert trend["points"][-1]["durationAvg7"] == "25200s"

    bad = api.get("/v1/users/me/sleepStats", headers=me.auth, params={"startDate": "soon"})
    assert error_of(bad)[:2] == (400, "INVALID_ARGUMENT") and "start_date" in error_of(bad)[2]
    assert api.get("/v1/users/me/sleepStats").status_code == 401


def grant_admin(username: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "services.user.roles", "grant", username, "admin"],
        check=True,
        capture_output=True,
        timeout=60,
    )


def log_in(api: httpx.Client, account) -> dict[str, str]:
    session = api.post(
        "/v1/sessions", json={"username": account.username, "password": account.password}
    )
    assert session.status_code == 200, session.text
    return {"Authorization": f"Bearer {session.json()['accessToken']}"}


def test_events_are_tracked_by_anyone_and_counted_for_admins(api, new_account):
    name = f"e2e_{uuid.uuid4().hex[:10]}"
    at = datetime.now(UTC) - timedelta(minutes=5)

    def batch(*ids: str, **fields) -> dict:
        return {
            "events": [
                {"eventId": f"{name}-{i}", "name": name, "eventTime": stamp(at), **fields}
                for i in ids
            ]
        }

    track = "/v1/analytics/events:batchCreate"
    anonymous = api.post(track, headers=BROWSER, json=batch("1", "2", page="/feed"))
    assert anonymous.status_code == 200, anonymous.text
    assert anonymous.json() == {"acceptedCount": 2, "droppedCount": 0}
    member = new_account()
    signed_in = api.post(track, headers={**BROWSER, **member.auth}, json=batch("3", page="/me"))
    assert signed_in.json()["acceptedCount"] == 1
    api.post(track, headers=BROWSER, json=batch("1", "2", page="/feed"))  # resent: counted once

    bot = api.post(track, headers={"User-Agent": "Googlebot/2.1"}, json=batch("4"))
    assert bot.json() == {"acceptedCount": 0, "droppedCount": 1}
    bad = api.post(track, headers=BROWSER, json=batch("5", properties={"Bad-Key": "x"}))
    status, code, message = error_of(bad)
    assert (status, code) == (400, "INVALID_ARGUMENT") and "events[0].properties" in message
    stale = api.post(
        track, headers={**BROWSER, "Authorization": "Bearer nonsense"}, json=batch("6")
    )
    assert stale.status_code == 401  # a token, when sent, must be valid

    counts = f"/v1/analytics/events/{name}/counts"
    params = {"granularity": "hour", "timeZone": "Asia/Kolkata"}
    assert error_of(api.get(counts, headers=member.auth, params=params))[:2] == (
        403,
        "PERMISSION_DENIED",
    )
    assert api.get(counts, params=params).status_code == 401
    grant_admin(member.username)
    admin = log_in(api, member)

    def total() -> int:
        response = api.get(counts, headers=admin, params=params)
        assert response.status_code == 200, response.text
        return int(response.json()["total"])

    eventually(lambda: total() == 3, timeout=20, what="three events counted once each")
    pages = api.get(
        f"/v1/analytics/events/{name}/breakdown", headers=admin, params={"dimension": "page"}
    ).json()
    assert [(r["value"], r["count"]) for r in pages["rows"]] == [("/feed", "2"), ("/me", "1")]
    traffic = api.get("/v1/analytics/traffic", headers=admin, params={"granularity": "hour"})
    assert traffic.status_code == 200 and int(traffic.json()["uniqueVisitors"]) >= 2
    top = api.get("/v1/analytics/topPages", headers=admin, params={"limit": 500})
    assert error_of(top)[:2] == (400, "INVALID_ARGUMENT") and "limit" in error_of(top)[2]


def test_funnels_and_retention_answer_admins_only(api, new_account):
    name = f"e2e_{uuid.uuid4().hex[:10]}"
    first, second = f"{name}_open", f"{name}_done"
    at = datetime.now(UTC) - timedelta(minutes=5)
    member = new_account()
    events = [
        {"eventId": f"{name}-1", "name": first, "eventTime": stamp(at)},
        {"eventId": f"{name}-2", "name": second, "eventTime": stamp(at + timedelta(seconds=30))},
    ]
    tracked = api.post(
        "/v1/analytics/events:batchCreate",
        headers={**BROWSER, **member.auth},
        json={"events": events},
    )
    assert tracked.status_code == 200, tracked.text
    funnels, retention = "/v1/analytics/funnels", "/v1/analytics/retention"
    params = {
        "steps": f"{first},{second}",
        "window": "3600s",
        "by": "user",
        "timeZone": "Europe/Paris",
    }
    for path, query in ((funnels, params), (retention, {"granularity": "day"})):
        refused = api.get(path, headers=member.auth, params=query)
        assert error_of(refused)[:2] == (403, "PERMISSION_DENIED"), path
        assert api.get(path, params=query).status_code == 401
    grant_admin(member.username)
    admin = log_in(api, member)

    def counts() -> list[int]:
        response = api.get(funnels, headers=admin, params=params)
        assert response.status_code == 200, response.text
        return [int(step["count"]) for step in response.json()["steps"]]

    eventually(lambda: counts() == [1, 1], timeout=20, what="both steps reached once")
    funnel = api.get(funnels, headers=admin, params=params).json()
    assert funnel["steps"][1]["medianTimeFromPrevious"] == "30s"
    assert (funnel["by"], funnel["window"], funnel["timeZone"]) == ("user", "3600s", "Europe/Paris")
    repeated = api.get(funnels, headers=admin, params=[("steps", first), ("steps", second)])
    assert repeated.status_code == 200 and len(repeated.json()["steps"]) == 2, repeated.text
    bad = api.get(funnels, headers=admin, params={"steps": first})
    assert error_of(bad)[:2] == (400, "INVALID_ARGUMENT") and "steps" in error_of(bad)[2]

    query = {"granularity": "day", "timeZone": "Asia/Tokyo", "periods": 3}
    cohorts = api.get(retention, headers=admin, params=query)
    assert cohorts.status_code == 200, cohorts.text
    found = cohorts.json()
    assert (found["granularity"], found["by"]) == ("day", "user") and len(found["cohorts"]) == 15
    assert sum(int(c["size"]) for c in found["cohorts"]) >= 1  # this member at least
    visitors = api.get(retention, headers=admin, params={"by": "visitor"})
    assert error_of(visitors)[:2] == (400, "INVALID_ARGUMENT") and "by" in error_of(visitors)[2]
