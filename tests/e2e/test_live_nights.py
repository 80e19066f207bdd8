"""Nights started live, over REST: every read model counts one from its finish, never before.

The feed, the boards and the statistics are fed by events; each check ends
with a night recorded after the fact, so that once it shows, everything its
owner did before has been applied too (one owner's events arrive in order).
Waiting eight hours for a night to end is replaced by moving its start back in
the sleep service's database, as the clock would have.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from tests.e2e.test_feed_rest import feed_ids, follow
from tests.support import eventually

#: Nights recorded after the fact end on these days, long before tonight.
BASE = (datetime.now(UTC) - timedelta(days=20)).replace(hour=7, minute=0, second=0, microsecond=0)


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def call(api, account, method: str, path: str, body: dict | None = None, status: int = 200):
    response = api.request(method, path, headers=account.auth, json=body)
    assert response.status_code == status, response.text
    return response.json()


def started_hours_ago(settings, entry_id: str, hours: float) -> None:
    """The night began `hours` ago: what a night's sleep would have done to its start."""
    with psycopg.connect(settings.postgres.dsn("zentry_sleep"), autocommit=True) as conn:
        conn.execute(
            "UPDATE sleep_entries "
            "SET start_time = date_trunc('second', now()) - make_interval(secs => %s), "
            "created_at = date_trunc('second', now()) - make_interval(secs => %s) "
            "WHERE id = %s",
            (hours * 3600, hours * 3600, entry_id),
        )


class Counted:
    """What the read models show of one owner: the reader's feed, the boards, the stats."""

    def __init__(self, api, owner, reader):
        self.api, self.owner, self.reader = api, owner, reader
        self.day = 0

    def barrier(self) -> str:
        """A night recorded after the fact, once every read model shows it."""
        self.day += 1
        end = BASE + timedelta(days=self.day)
        body = {"startTime": iso(end - timedelta(hours=8)), "endTime": iso(end)}
        marker = call(self.api, self.owner, "POST", "/v1/sleepEntries", body)["id"]
        eventually(
            lambda: marker in feed_ids(self.api, self.reader),
            timeout=20,
            what="the marker night is in the reader's feed",
        )
        return marker

    def nights_on_board(self) -> int:
        board = call(
            self.api, self.reader, "GET", "/v1/leaderboards/nights/all-time?scope=following"
        )
        rows = [s for s in board.get("standings", []) if s["username"] == self.owner.username]
        return int(rows[0]["nights"]) if rows else 0

    def nights_in_stats(self) -> int:
        first = (BASE - timedelta(days=1)).date().isoformat()
        last = datetime.now(UTC).date() + timedelta(days=1)
        stats = call(
            self.api,
            self.owner,
            "GET",
            f"/v1/users/me/sleepStats?startDate={first}&endDate={last.isoformat()}",
        )
        return stats.get("nightsLogged", 0)

    def check(self, night_ids: set[str], markers: int) -> None:
        """Exactly these live nights are counted, beside `markers` marker nights."""
        feed = set(feed_ids(self.api, self.reader))
        assert feed & night_ids == night_ids
        expected = len(night_ids) + markers
        assert len(feed) == expected, feed
        eventually(
            lambda: (self.nights_on_board(), self.nights_in_stats()) == (expected, expected),
            timeout=20,
            what=f"{expected} nights on the board and in the statistics",
        )


def test_live_nights_count_everywhere_from_their_finish_only(api, new_account, settings):
    owner, reader = new_account(timeZone="Europe/Paris"), new_account()
    follow(api, reader, owner)
    counted = Counted(api, owner, reader)

    planned = iso(datetime.now(UTC) + timedelta(hours=8))
    tonight = call(api, owner, "POST", "/v1/sleepEntries:start", {"plannedEndTime": planned})
    assert tonight["state"] == "STATE_OPEN" and "endTime" not in tonight
    assert tonight["plannedEndTime"] == planned and tonight["timeZone"] == "Europe/Paris"
    again = call(api, owner, "POST", "/v1/sleepEntries:start", {}, status=400)
    assert again["status"] == "FAILED_PRECONDITION" and tonight["id"] in again["message"]
    # Its owner's alone: not listed unless asked for, and not there for the reader.
    assert call(api, owner, "GET", "/v1/users/me/sleepEntries").get("sleepEntries", []) == []
    mine = call(api, owner, "GET", "/v1/users/me/sleepEntries?showUnfinished=true")
    assert [e["id"] for e in mine["sleepEntries"]] == [tonight["id"]]
    call(api, reader, "GET", f"/v1/sleepEntries/{tonight['id']}", status=404)

    markers = [counted.barrier()]
    counted.check(set(), len(markers))

    started_hours_ago(settings, tonight["id"], 7.5)
    finished = call(api, owner, "POST", f"/v1/sleepEntries/{tonight['id']}:finish", {"quality": 4})
    assert finished["state"] == "STATE_RECORDED" and finished["quality"] == 4
    length = parse(finished["endTime"]) - parse(finished["startTime"])
    assert timedelta(hours=7, minutes=29) < length < timedelta(hours=7, minutes=31)
    assert call(api, owner, "POST", f"/v1/sleepEntries/{tonight['id']}:finish", {}) == finished
    markers.append(counted.barrier())
    counted.check({tonight["id"]}, len(markers))
    # Placed in feeds by when it was recorded (finished), not started: above the night
    # recorded while it was open.
    assert feed_ids(api, reader)[:3] == [markers[1], tonight["id"], markers[0]]

    # Cancelled: gone, and never counted.
    nap = call(api, owner, "POST", "/v1/sleepEntries:start", {})
    assert call(api, owner, "POST", f"/v1/sleepEntries/{nap['id']}:cancel", {}) == {}
    call(api, owner, "GET", f"/v1/sleepEntries/{nap['id']}", status=404)

    # Left open for more than a day: abandoned by the sweep, counted once given its end.
    left = call(api, owner, "POST", "/v1/sleepEntries:start", {})
    # 40 hours: its night (8 of them) then ends on another day than tonight's, as the
    # statistics count nights by their date.
    started_hours_ago(settings, left["id"], 40)
    eventually(
        lambda: (
            call(api, owner, "GET", f"/v1/sleepEntries/{left['id']}")["state"] == "STATE_ABANDONED"
        ),
        timeout=20,
        what="the night left open is abandoned",
    )
    markers.append(counted.barrier())
    counted.check({tonight["id"]}, len(markers))
    no_end = call(api, owner, "POST", f"/v1/sleepEntries/{left['id']}:finish", {}, status=400)
    assert no_end["details"][0]["fieldViolations"][0]["field"] == "end_time"
    start = parse(call(api, owner, "GET", f"/v1/sleepEntries/{left['id']}")["startTime"])
    end = iso(start + timedelta(hours=8))
    given = call(
        api, owner, "PATCH", f"/v1/sleepEntries/{left['id']}?updateMask=endTime", {"endTime": end}
    )
    assert given["state"] == "STATE_RECORDED" and given["duration"] == f"{8 * 3600}s"
    markers.append(counted.barrier())
    counted.check({tonight["id"], left["id"]}, len(markers))
