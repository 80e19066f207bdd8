"""Read your own writes: a profile change counts in the very next request, everywhere.

The README's sequence, with no pause: change the zone (or the goal), then at
once record a night, read a board's "today", read the statistics. The sleep,
leaderboard and analytics services keep event-fed copies of profiles, which
lag the user service; the caller's own settings are read from the user
service instead (services.kit.profiles), and from the copy only when it is down.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
from google.protobuf import timestamp_pb2
from zentry.sleep.v1 import sleep_service_pb2, sleep_service_pb2_grpc

from infra.mesh import routed_ports
from tests.e2e.conftest import TEST_ENV, consumers_stopped
from tests.support import eventually

#: Each differs from the one before in zone, and but for the last pair in the night's date.
ZONES = ("Asia/Tokyo", "America/Los_Angeles", "Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC")
ROUNDS = 20  # changes then writes, back to back: enough to catch a copy that lags
BASE = (datetime.now(UTC) - timedelta(days=60)).replace(hour=0, minute=0, second=0, microsecond=0)


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def change_profile(api, account, **fields) -> None:
    mask = ",".join(fields)
    response = api.patch(
        "/v1/users/me", headers=account.auth, params={"updateMask": mask}, json=fields
    )
    assert response.status_code == 200, response.text
    assert all(response.json()[name] == value for name, value in fields.items())


def the_issue_night(day: int) -> tuple[datetime, datetime]:
    """14:30 to 22:10 UTC, `day` days after BASE: a different local date east of UTC+1:50."""
    start = BASE + timedelta(days=day, hours=14, minutes=30)
    return start, start + timedelta(hours=7, minutes=40)


def record(api, account, day: int) -> dict:
    start, end = the_issue_night(day)
    body = {"startTime": iso(start), "endTime": iso(end)}
    response = api.post("/v1/sleepEntries", headers=account.auth, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def local_today(zone: str) -> str:
    return datetime.now(ZoneInfo(zone)).date().isoformat()


def nights_dated_in(api, account, rounds: int) -> list[str]:
    """Change the zone, record a night at once; the rounds whose night missed the new zone."""
    wrong = []
    for n in range(rounds):
        zone = ZONES[n % len(ZONES)]
        change_profile(api, account, timeZone=zone)
        entry = record(api, account, n)
        expected = the_issue_night(n)[1].astimezone(ZoneInfo(zone)).date().isoformat()
        if (entry["timeZone"], entry["sleepDate"]) != (zone, expected):
            wrong.append(f"{zone}: got {entry['timeZone']} {entry['sleepDate']}, not {expected}")
    return wrong


def boards_dated_in(api, account, zones: tuple[str, ...]) -> list[str]:
    """Change the zone, read today's daily board at once; the windows not in the new zone."""
    wrong = []
    for zone in zones:
        change_profile(api, account, timeZone=zone)
        before = local_today(zone)
        response = api.get("/v1/leaderboards/nights/daily", headers=account.auth)
        assert response.status_code == 200, response.text
        window = response.json()["window"]
        if window["timeZone"] != zone or window["id"] not in {before, local_today(zone)}:
            wrong.append(f"{zone} (today {before}): got {window['timeZone']} {window['id']}")
    return wrong


def stats_measured_in(api, account, goals: tuple[int, ...]) -> list[str]:
    """Change the goal and zone, read the statistics at once; those not on the new ones."""
    wrong = []
    for n, hours in enumerate(goals):
        zone = ZONES[n % len(ZONES)]
        goal = f"{hours * 3600}s"
        change_profile(api, account, timeZone=zone, sleepGoal=goal)
        before = local_today(zone)
        response = api.get("/v1/users/me/sleepStats", headers=account.auth)
        assert response.status_code == 200, response.text
        stats = response.json()
        if stats["sleepGoal"] != goal or stats["endDate"] not in {before, local_today(zone)}:
            wrong.append(f"{goal} {zone}: got {stats['sleepGoal']} ending {stats['endDate']}")
    return wrong


def test_a_night_recorded_right_after_a_zone_change_takes_the_new_zone(api, new_account):
    me = new_account()
    assert nights_dated_in(api, me, ROUNDS) == []


def test_a_board_read_right_after_a_zone_change_is_today_in_the_new_zone(api, new_account):
    me = new_account()
    # Kiritimati is UTC+14 and Pago Pago UTC-11: their dates always differ.
    assert boards_dated_in(api, me, ("Pacific/Kiritimati", "Pacific/Pago_Pago") * 4) == []


def test_statistics_read_right_after_a_goal_change_use_the_new_goal(api, new_account):
    me = new_account()
    assert stats_measured_in(api, me, (6, 9, 7, 10, 8, 5)) == []


def test_own_writes_count_with_every_consumer_of_user_events_stopped(api, new_account, mesh):
    with consumers_stopped(mesh):
        me = new_account()  # not even in any copy: no event about them was consumed
        assert nights_dated_in(api, me, len(ZONES)) == []
        assert boards_dated_in(api, me, ("Pacific/Kiritimati", "Pacific/Pago_Pago")) == []
        assert stats_measured_in(api, me, (6, 9)) == []


def test_nights_are_recorded_while_the_user_service_is_down(api, new_account, mesh, settings):
    """Straight to a sleep instance over gRPC: the gateway needs the user service for its keys."""
    me = new_account(timeZone="Asia/Tokyo")
    sleep_port = next(
        c.port for c in mesh.children if c.name.startswith("sleep-") and c.role == "api"
    )
    eventually(
        lambda: copied_zone(settings, me.id) == "Asia/Tokyo",
        timeout=30,
        what="the sleep service's copy of the new account",
    )
    users = [c for c in mesh.children if c.name.startswith("user-")]
    for child in users:
        child.process.terminate()
    for child in users:
        mesh.stop(child)
    try:
        start, end = the_issue_night(1)
        request = sleep_service_pb2.CreateSleepEntryRequest(
            start_time=timestamp_pb2.Timestamp(seconds=int(start.timestamp())),
            end_time=timestamp_pb2.Timestamp(seconds=int(end.timestamp())),
        )
        with mesh.channel(sleep_port, "sleep") as channel:
            stub = sleep_service_pb2_grpc.SleepServiceStub(channel)
            entries = [
                stub.CreateSleepEntry(
                    request,
                    metadata=(("authorization", me.auth["Authorization"]),),
                    timeout=10,
                )
                for request in (request, _later(request, 1), _later(request, 2))
            ]
        tokyo = ZoneInfo("Asia/Tokyo")
        assert [(e.time_zone, e.sleep_date) for e in entries] == [
            ("Asia/Tokyo", (end + timedelta(days=d)).astimezone(tokyo).date().isoformat())
            for d in range(3)
        ]
    finally:
        children = [mesh.start_service("user", 0, TEST_ENV) for _ in users]
        for child in children:
            mesh.wait_healthy(child)
        eventually(
            lambda: {c.port for c in children} <= routed_ports(settings),
            timeout=30,
            what="Envoy routes to the user instances again",
        )


def copied_zone(settings, user_id: str) -> str | None:
    """The zone in the sleep service's copy of the user, if it has them."""
    with psycopg.connect(settings.postgres.dsn("zentry_sleep"), autocommit=True) as conn:
        row = conn.execute("SELECT time_zone FROM users WHERE id = %s", (user_id,)).fetchone()
    return row[0] if row else None


def _later(request, days: int):
    """The same night `days` days later."""
    later = sleep_service_pb2.CreateSleepEntryRequest()
    later.CopyFrom(request)
    later.start_time.seconds += days * 86400
    later.end_time.seconds += days * 86400
    return later
