"""Funnels and retention cohorts against real Kafka, PostgreSQL and Redis.

Events go through the real intake (checks, visitor hash, Kafka append) and the
real rollup consumer where they can; weeks-old events (older than the 72 hours
TrackEvents takes) are published on the world's client-events topic as the
intake publishes them, as a replay would deliver them.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from google.protobuf import duration_pb2
from sqlalchemy import text
from zentry.analytics.v1 import product_analytics_service_pb2 as pb
from zentry.events.v1 import analytics_events_pb2 as aev
from zentry.events.v1 import user_events_pb2 as uev

from services.analytics import app
from services.analytics.product import cohorts, reports
from services.analytics.product.retention import Sweeper
from services.kit.auth import Caller
from services.kit.db import Database, migrate
from services.kit.errors import FailedPrecondition, InvalidArgument
from services.kit.events import envelope
from tests.analytics_world import AnalyticsWorld, client_event
from tests.event_world import ts, world_fixture

world = world_fixture(AnalyticsWorld)

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
BASE = NOW - timedelta(hours=3)
STEPS = ["view_plans", "start_trial", "first_night"]


def at(minutes: float) -> datetime:
    return BASE + timedelta(minutes=minutes)


def user(name: str) -> Caller:
    return Caller(user_id=str(uuid.uuid4()), username=name)


def funnel_request(**fields) -> pb.GetFunnelRequest:
    values = {
        "steps": [",".join(STEPS)],
        "window": duration_pb2.Duration(seconds=1800),
        "start_time": ts(BASE - timedelta(hours=1)),
        **fields,
    }
    return pb.GetFunnelRequest(**values)


def figures(funnel: pb.Funnel) -> list[tuple]:
    return [(s.name, s.count, s.dropped_count) for s in funnel.steps]


async def track_journeys(world, journeys: dict[str, list[tuple[str, float]]], caller=None):
    """Each anonymous visitor's (step, minutes) events, from a device of its own."""
    for visitor, events in journeys.items():
        batch = [
            client_event(f"{visitor}-{i}", at(minutes), name=name, anonymous_id=visitor)
            for i, (name, minutes) in enumerate(events)
        ]
        await world.track(batch, caller=caller)


async def test_a_funnel_counts_each_visitor_once_by_the_rules(world):
    view, trial, night = STEPS
    journeys = {
        "done": [(view, 0), (trial, 2), (night, 10)],
        "skips": [(view, 0), (night, 5)],  # never started the trial: stops at the first step
        "back": [(view, 0), (trial, 4), (view, 6), (trial, 7), (night, 20)],  # counted once
        "wrong_order": [(trial, 0), (view, 1)],
        "too_slow": [(view, 0), (trial, 31)],  # past the 30-minute window
        "half": [(view, 0), (trial, 6)],
    }
    await track_journeys(world, journeys)
    ann = user("ann")
    signed_in = [(view, 0), (trial, 1), (night, 2)]
    await world.track(
        [client_event(f"ann-{i}", at(m), name=n) for i, (n, m) in enumerate(signed_in)],
        caller=ann,
    )
    await track_journeys(world, {"done": journeys["done"]})  # resent: counted once
    await world.settled()

    funnel = await world.reports.funnel(funnel_request(time_zone="Asia/Kolkata"))
    assert figures(funnel) == [(view, 7, 0), (trial, 4, 3), (night, 3, 1)]
    first, second, third = funnel.steps
    assert (first.conversion_rate, second.conversion_rate) == (1.0, pytest.approx(4 / 7))
    assert second.drop_off_rate == pytest.approx(3 / 7) and third.drop_off_rate == 0.25
    assert not first.HasField("median_time_from_previous")
    assert second.median_time_from_previous.ToTimedelta() == timedelta(minutes=3)  # 1 2 4 6
    assert third.median_time_from_previous.ToTimedelta() == timedelta(minutes=8)  # 1 8 16
    assert (funnel.by, funnel.window.seconds, funnel.time_zone) == ("visitor", 1800, "Asia/Kolkata")
    start = funnel.start_time.ToDatetime(tzinfo=UTC).astimezone(ZoneInfo("Asia/Kolkata"))
    assert (start.hour, start.minute) == (0, 0)  # aligned down to the zone's midnight

    by_user = await world.reports.funnel(funnel_request(by="user"))
    assert figures(by_user) == [(view, 1, 0), (trial, 1, 0), (night, 1, 0)]
    wide = await world.reports.funnel(funnel_request(window=duration_pb2.Duration(seconds=3600)))
    assert [s.count for s in wide.steps] == [7, 5, 3]  # too_slow's trial is within an hour


async def test_a_funnel_that_would_read_too_many_visitors_is_refused(world, monkeypatch):
    view, trial, _night = STEPS
    await track_journeys(world, {f"v{n}": [(view, n), (trial, n + 1)] for n in range(3)})
    await world.settled()
    monkeypatch.setattr(reports, "MAX_FUNNEL_SUBJECTS", 2)
    with pytest.raises(FailedPrecondition, match="shorter range or rarer steps"):
        await world.reports.funnel(funnel_request())
    monkeypatch.setattr(reports, "MAX_FUNNEL_SUBJECTS", 3)
    assert [s.count for s in (await world.reports.funnel(funnel_request())).steps] == [3, 3, 0]


async def test_late_events_count_as_if_they_had_arrived_in_order(world):
    view, trial, night = STEPS
    late = user("late")
    await world.track(
        [client_event("l-2", at(10), name=trial), client_event("l-3", at(20), name=night)],
        caller=late,
    )
    await world.settled()
    assert [s.count for s in (await world.reports.funnel(funnel_request())).steps] == [0, 0, 0]

    await world.track([client_event("l-1", at(5), name=view)], caller=late)  # sent late
    await world.settled()
    funnel = await world.reports.funnel(funnel_request())
    assert [s.count for s in funnel.steps] == [1, 1, 1]
    assert funnel.steps[1].median_time_from_previous.ToTimedelta() == timedelta(minutes=5)

    # A signed-in user is one subject on every day: a journey across midnight converts.
    owl = user("owl")
    midnight = NOW.replace(hour=0, minute=0) - timedelta(days=1)
    await world.track(
        [
            client_event("o-1", midnight - timedelta(minutes=10), name=view),
            client_event("o-2", midnight + timedelta(minutes=10), name=trial),
        ],
        caller=owl,
    )
    await world.settled()
    across = await world.reports.funnel(
        funnel_request(steps=[view, trial], start_time=ts(midnight - timedelta(hours=1)))
    )
    assert [s.count for s in across.steps] == [2, 2]  # late's and owl's


async def test_a_late_event_moves_a_user_into_an_earlier_cohort(world):
    ann = user("ann")
    recent, early = NOW - timedelta(hours=1), NOW - timedelta(hours=50)
    request = pb.GetRetentionRequest(
        granularity="day", start_time=ts(NOW - timedelta(days=3)), periods=3
    )
    await world.track([client_event("r-1", recent)], caller=ann)
    await world.settled()
    before = {c.period.label: c for c in (await world.reports.retention(request)).cohorts}
    assert before[recent.date().isoformat()].size == 1

    await world.track([client_event("r-0", early)], caller=ann)  # a late event, 50 hours old
    await world.settled()
    after = {c.period.label: c for c in (await world.reports.retention(request)).cohorts}
    cohort = after[early.date().isoformat()]
    assert cohort.size == 1 and after[recent.date().isoformat()].size == 0
    back = (recent.date() - early.date()).days  # 2 or 3, by the time of day
    counts = [p.count for p in cohort.points]
    assert counts[0] == counts[back] == 1 and sum(counts) == 2, counts
    assert cohort.points[back].rate == 1.0 and cohort.points[-1].in_progress


def publish_accepted(world, event_id: str, name: str, when: datetime, user_id: str = "") -> None:
    """An event as the intake publishes it (received when it happened)."""
    visitor = f"u:{user_id}" if user_id else f"a:{uuid.uuid4().hex}"
    event = aev.ClientEventAccepted(
        event_id=event_id, name=name, visitor_id=visitor, user_id=user_id
    )
    event.event_time.FromDatetime(when)
    event.receive_time.FromDatetime(when)
    wrapped = envelope(event, visitor, "analytics", occur_time=when)
    world.producer.produce(
        world.client_topic, key=visitor.encode(), value=wrapped.SerializeToString()
    )
    assert world.producer.flush(10) == 0
    world.published[world.client_topic] += 1


async def test_weekly_cohorts_follow_the_callers_zone_and_redelivery_changes_nothing(world):
    new_york = ZoneInfo("America/New_York")
    local_now = NOW.astimezone(new_york)
    monday = local_now.date() - timedelta(days=local_now.weekday() + 35)

    def week(n: int, day: int, hour: int, minute: int = 0) -> datetime:
        local = datetime.combine(monday + timedelta(weeks=n, days=day), datetime.min.time())
        return local.replace(hour=hour, minute=minute, tzinfo=new_york).astimezone(UTC)

    ann, bob, cy = (str(uuid.uuid4()) for _ in range(3))
    events = [
        (ann, week(0, 1, 12)),  # first seen in week 0, back in weeks 1 and 3
        (ann, week(1, 2, 9)),
        (ann, week(3, 3, 9)),
        (bob, week(0, 6, 23, 30)),  # Sunday 23:30 in New York: Monday in UTC
        (bob, week(2, 0, 8)),
        (cy, week(1, 0, 0, 30)),  # Monday 00:30 in New York
        (cy, week(2, 6, 23)),
        ("", week(0, 1, 12)),  # an anonymous visitor: in no cohort
    ]
    for i, (user_id, when) in enumerate(events):
        publish_accepted(world, f"w-{i}", "page_view", when, user_id)
    await world.settled()
    request = pb.GetRetentionRequest(
        start_time=ts(week(0, 0, 0)), end_time=ts(week(2, 0, 0)), periods=3
    )
    local = await world.reports.retention(
        pb.GetRetentionRequest(time_zone="America/New_York", **_fields(request))
    )
    assert (local.granularity, local.by) == ("week", "user")
    assert [(c.period.label, c.size, [p.count for p in c.points]) for c in local.cohorts] == [
        (monday.isoformat(), 2, [2, 1, 1, 1]),
        ((monday + timedelta(weeks=1)).isoformat(), 1, [1, 1, 0, 0]),
    ]
    assert local.cohorts[0].points[1].rate == 0.5
    assert not any(p.in_progress for c in local.cohorts for p in c.points)
    in_utc = await world.reports.retention(request)
    assert [c.size for c in in_utc.cohorts][:2] == [1, 2]  # bob's Sunday night is Monday in UTC

    for i, (user_id, when) in enumerate(events):  # every event delivered again
        publish_accepted(world, f"w-{i}", "page_view", when, user_id)
    await world.settled()
    again = await world.reports.retention(
        pb.GetRetentionRequest(time_zone="America/New_York", **_fields(request))
    )
    assert again == local


def _fields(request) -> dict:
    return {f.name: v for f, v in request.ListFields()}


async def test_a_deleted_user_is_forgotten_by_funnels_and_retention(world):
    view, trial, _night = STEPS
    gone = user("gone")
    await world.track(
        [client_event("g-1", at(0), name=view), client_event("g-2", at(1), name=trial)],
        caller=gone,
    )
    await world.settled()
    assert await stored(world, gone.user_id) == {"users_seen": 1, "active_days": 1}
    world.publish(uev.UserDeleted(user_id=gone.user_id), gone.user_id)
    await world.settled()
    await world.track([client_event("g-3", at(2), name=view)], caller=gone)  # skipped
    await world.settled()
    assert await stored(world, gone.user_id) == {"users_seen": 0, "active_days": 0}
    funnel = await world.reports.funnel(funnel_request(steps=[view, trial], by="user"))
    assert [s.count for s in funnel.steps] == [0, 0]
    retention = await world.reports.retention(pb.GetRetentionRequest(granularity="day"))
    assert sum(c.size for c in retention.cohorts) == 0


async def stored(world, user_id: str) -> dict[str, int]:
    async with world.db.transaction() as session:
        return {
            table: (
                await session.execute(
                    text(f"SELECT count(*) FROM {table} WHERE user_id = :u"), {"u": user_id}
                )
            ).scalar()
            for table in ("users_seen", "active_days")
        }


async def test_activity_goes_after_the_rollup_retention(world):
    ann = user("ann")
    await world.track([client_event("s-1", at(0))], caller=ann)
    await world.settled()
    sweeper = Sweeper(world.db, timedelta(days=30), timedelta(days=400), 3600)
    await sweeper.sweep(now=datetime.now(UTC) + timedelta(days=31))
    assert await stored(world, ann.user_id) == {"users_seen": 1, "active_days": 1}
    await sweeper.sweep(now=datetime.now(UTC) + timedelta(days=401))
    assert await stored(world, ann.user_id) == {"users_seen": 0, "active_days": 0}


async def test_the_migration_fills_cohorts_from_the_raw_events_kept(blank_database):
    await asyncio.to_thread(migrate, blank_database, app.MIGRATIONS, "0004")
    moments = [datetime(2026, 11, 2, 23, 59, 59, tzinfo=UTC), NOW - timedelta(minutes=7)]
    moments += [NOW - timedelta(hours=30), NOW]
    db = Database(blank_database)
    try:
        async with db.transaction() as session:
            for i, when in enumerate(moments):
                await session.execute(
                    text(
                        "INSERT INTO raw_events VALUES (:id, 'page_view', :t, :t, 'u:ann', "
                        "'ann', '', '', '', '{}')"
                    ),
                    {"id": f"m-{i}", "t": when},
                )
            await session.execute(
                text(
                    "INSERT INTO raw_events VALUES ('m-anon', 'page_view', now(), now(), "
                    "'a:x', NULL, '', '', '', '{}')"
                )
            )
        await asyncio.to_thread(migrate, blank_database, app.MIGRATIONS)
        expected = cohorts.Activity()
        for when in moments:
            expected.add("ann", when)
        async with db.transaction() as session:
            seen = (await session.execute(text("SELECT * FROM users_seen"))).all()
            days = await session.execute(
                text("SELECT user_id, day, CAST(quarters AS text) FROM active_days")
            )
            found = {(u, d): cohorts.decode(q) for u, d, q in days}
    finally:
        await db.dispose()
    assert [(u, first, last) for u, first, last in seen] == [("ann", *expected.spans["ann"])]
    assert found == expected.days


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.GetFunnelRequest(steps=["view_plans"]), "steps"),
        (pb.GetFunnelRequest(steps=["view_plans", "Start Trial"]), "steps"),
        (funnel_request(window=duration_pb2.Duration(seconds=0)), "window"),
        (funnel_request(window=duration_pb2.Duration(seconds=8 * 86400)), "window"),
        (funnel_request(by="robot"), "by"),
        (funnel_request(time_zone="Mars/Olympus"), "time_zone"),
        (funnel_request(start_time=ts(NOW), end_time=ts(NOW)), "start_time"),
        (funnel_request(start_time=ts(NOW - timedelta(days=32))), "start_time"),
    ],
)
async def test_bad_funnel_queries_name_the_field(world, request_, field):
    with pytest.raises(InvalidArgument) as raised:
        await world.reports.funnel(request_)
    assert raised.value.violations[0].field == field


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.GetRetentionRequest(granularity="month"), "granularity"),
        (pb.GetRetentionRequest(by="visitor"), "by"),
        (pb.GetRetentionRequest(by="robot"), "by"),
        (pb.GetRetentionRequest(periods=13), "periods"),
        (pb.GetRetentionRequest(granularity="day", periods=32), "periods"),
        (pb.GetRetentionRequest(periods=-1), "periods"),
        (pb.GetRetentionRequest(start_time=ts(NOW - timedelta(weeks=13))), "start_time"),
        (pb.GetRetentionRequest(start_time=ts(NOW + timedelta(days=1))), "start_time"),
        (pb.GetRetentionRequest(time_zone="Mars/Olympus"), "time_zone"),
    ],
)
async def test_bad_retention_queries_name_the_field(world, request_, field):
    with pytest.raises(InvalidArgument) as raised:
        await world.reports.retention(request_)
    assert raised.value.violations[0].field == field


async def test_funnels_need_their_raw_events_and_retention_its_activity(world):
    old = funnel_request(
        start_time=ts(NOW - timedelta(days=40)), end_time=ts(NOW - timedelta(days=35))
    )
    with pytest.raises(FailedPrecondition, match="kept for 30 days"):
        await world.reports.funnel(old)
    ancient = pb.GetRetentionRequest(
        start_time=ts(NOW - timedelta(days=420)), end_time=ts(NOW - timedelta(days=410))
    )
    with pytest.raises(FailedPrecondition, match="kept for 400 days"):
        await world.reports.retention(ancient)


FIRST_DAY, LAST_DAY = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, tzinfo=UTC)


async def test_times_at_the_ends_of_the_calendar_are_refused_or_taken_as_now(world):
    """Found by thinking of the fuzzer: `end + window` and `end - span` left datetime's range."""
    for request in (
        funnel_request(start_time=ts(FIRST_DAY), end_time=ts(FIRST_DAY + timedelta(days=3))),
        pb.GetFunnelRequest(steps=STEPS, end_time=ts(FIRST_DAY)),
    ):
        with pytest.raises(FailedPrecondition):
            await world.reports.funnel(request)
    for request in (
        pb.GetRetentionRequest(end_time=ts(FIRST_DAY)),
        pb.GetRetentionRequest(start_time=ts(FIRST_DAY)),
    ):
        with pytest.raises(FailedPrecondition):
            await world.reports.retention(request)
    funnel = await world.reports.funnel(pb.GetFunnelRequest(steps=STEPS, end_time=ts(LAST_DAY)))
    assert funnel.end_time.ToDatetime(tzinfo=UTC) <= datetime.now(UTC)
    retention = await world.reports.retention(pb.GetRetentionRequest(end_time=ts(LAST_DAY)))
    assert len(retention.cohorts) == 9  # the default 8 weeks before now, the first aligned
    with pytest.raises(InvalidArgument, match="start_time: must be in the past"):
        await world.reports.funnel(
            funnel_request(start_time=ts(LAST_DAY - timedelta(days=1)), end_time=ts(LAST_DAY))
        )
