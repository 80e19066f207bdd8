"""Analytics against real Kafka, PostgreSQL and Redis: events in, statistics and counts out.

Sleep statistics: sleep events go through the real batch consumers, and what
GetSleepStats and GetSleepTrend answer is compared with a recomputation
from the entries left after every create, update and delete. Product
analytics: batches go through the real intake (checks, bot filter, visitor
hash, Kafka append) and the real rollup consumer, and the queries must count
each event once.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from confluent_kafka import Consumer, TopicPartition
from google.protobuf import duration_pb2
from sqlalchemy import func, select, text
from zentry.analytics.v1 import product_analytics_service_pb2 as pb
from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev

from services.analytics import replay
from services.analytics.product import store as product_store
from services.analytics.product.cardinality import OTHER, Caps
from services.analytics.product.retention import Sweeper
from services.analytics.stats import domain as sleep_stats
from services.analytics.stats.domain import Night
from services.kit.addresses import kafka_security
from services.kit.auth import Caller
from services.kit.errors import FailedPrecondition, InvalidArgument
from tests.analytics_world import AnalyticsWorld, client_event
from tests.event_world import NOW, flush, ts, world_fixture

#: Redis' HyperLogLog has a standard error of 0.81 % (one run here counted 40 visitors as
#: 39): 2 of 40 is well beyond its error, and far below the mistakes that matter (2, 80).
HLL_SLACK = 2


world = world_fixture(AnalyticsWorld)


# -- sleep statistics ----------------------------------------------------------------


def night_state(world, user: str, day: date, bed: str, hours: float, tz: str, quality=0):
    """An entry starting at local `bed` the evening before `day` (or on it, after midnight)."""
    zone = ZoneInfo(tz)
    h, m = map(int, bed.split(":"))
    start_day = day - timedelta(days=1) if h >= 12 else day
    start = datetime(start_day.year, start_day.month, start_day.day, h, m, tzinfo=zone)
    end = start + timedelta(hours=hours)
    state = world.entry(user, NOW, hours=hours, sleep_date=day, time_zone=tz)
    state.start_time.CopyFrom(ts(start.astimezone(UTC)))
    state.end_time.CopyFrom(ts(end.astimezone(UTC)))
    state.duration.CopyFrom(duration_pb2.Duration(seconds=int(hours * 3600)))
    state.quality = quality
    return state


def changed(state, **fields):
    new = sev.SleepEntryState()
    new.CopyFrom(state)
    for name, value in fields.items():
        if name == "hours":
            new.end_time.CopyFrom(
                ts(new.start_time.ToDatetime(tzinfo=UTC) + timedelta(hours=value))
            )
            new.duration.CopyFrom(duration_pb2.Duration(seconds=int(value * 3600)))
        else:
            setattr(new, name, value)
    new.revision = state.revision + 1
    return new


def recompute(live: dict[str, sev.SleepEntryState]) -> list[Night]:
    """Nights from the entries themselves: totals per date, clock times of the longest."""
    by_date = defaultdict(list)
    for state in live.values():
        by_date[state.sleep_date].append(state)
    nights = []
    for day, states in by_date.items():
        longest = sorted(states, key=lambda s: (-s.duration.seconds, s.start_time.ToNanoseconds()))[
            0
        ]
        zone = ZoneInfo(longest.time_zone)
        bed = longest.start_time.ToDatetime(tzinfo=UTC).astimezone(zone)
        wake = longest.end_time.ToDatetime(tzinfo=UTC).astimezone(zone)
        rated = [s.quality for s in states if s.quality]
        nights.append(
            Night(
                date.fromisoformat(day),
                sum(s.duration.seconds for s in states),
                bed.hour * 60 + bed.minute,
                wake.hour * 60 + wake.minute,
                sum(rated) / len(rated) if rated else None,
            )
        )
    return nights


async def test_stats_and_trend_equal_a_recomputation_after_creates_updates_and_deletes(world):
    rng = random.Random(7)
    user = world.user(time_zone="Asia/Tokyo")
    start, end = date(2026, 9, 1), date(2026, 10, 30)
    live: dict[str, sev.SleepEntryState] = {}
    for i in range(60):
        day = start + timedelta(days=i)
        bed = rng.choice(["22:10", "23:05", "23:50", "00:20", "01:15"])
        state = night_state(
            world, user, day, bed, rng.uniform(5, 9.5), "Asia/Tokyo", rng.randint(0, 5)
        )
        world.publish(sev.SleepEntryCreated(entry=state), user)
        live[state.entry_id] = state
        if i % 9 == 0:  # a nap on the same date
            nap = night_state(world, user, day, "14:00", 1.0, "Asia/Tokyo")
            nap.start_time.CopyFrom(
                ts(datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=5))
            )
            nap.end_time.CopyFrom(ts(nap.start_time.ToDatetime(tzinfo=UTC) + timedelta(hours=1)))
            world.publish(sev.SleepEntryCreated(entry=nap), user)
            live[nap.entry_id] = nap
    await world.settled()
    for state in rng.sample(sorted(live.values(), key=lambda s: s.entry_id), 20):
        new = changed(state, hours=rng.uniform(4, 10), quality=rng.randint(1, 5))
        world.publish(sev.SleepEntryUpdated(entry=new, previous=state), user)
        live[new.entry_id] = new
    moved = next(iter(live.values()))  # an update that moves a night to another date
    to_day = date(2026, 10, 29)
    relocated = changed(moved, sleep_date=to_day.isoformat())
    world.publish(sev.SleepEntryUpdated(entry=relocated, previous=moved), user)
    live[relocated.entry_id] = relocated
    for state in rng.sample(sorted(live.values(), key=lambda s: s.entry_id), 12):
        world.publish(sev.SleepEntryDeleted(entry=state), user)
        del live[state.entry_id]
    await world.settled()

    stats = await world.reader.stats(Caller(user, ""), start.isoformat(), end.isoformat())
    expected = sleep_stats.summarize(recompute(live), 8 * 3600)
    assert stats.nights_logged == expected.nights
    assert stats.average_duration.seconds == round(expected.average_seconds)
    assert stats.median_duration.seconds == round(expected.median_seconds)
    assert stats.duration_stddev.seconds == round(expected.stddev_seconds)
    assert stats.sleep_debt.seconds == expected.debt_seconds
    assert stats.average_bedtime.time == sleep_stats.clock_text(expected.bedtime.minutes)
    assert stats.consistency_score == expected.consistency
    assert stats.best_night.sleep_date == expected.best.sleep_date.isoformat()
    assert stats.average_quality == round(expected.average_quality, 2)
    assert [w.nights for w in stats.weekdays] == [w.nights for w in expected.weekdays]

    trend = await world.reader.trend(Caller(user, ""), "2026-10-01", end.isoformat())
    points = sleep_stats.trend(recompute(live), date(2026, 10, 1), end)
    assert len(trend.points) == len(points) == 30
    assert trend.points[0].avg_30_nights > 20  # the nights before the range count
    for got, want in zip(trend.points, points, strict=True):
        assert got.logged == (want.night is not None)
        assert got.duration_avg_7.seconds == round(want.avg_7.seconds)
        assert got.duration_avg_30.seconds == round(want.avg_30.seconds)
        assert got.avg_30_nights == want.avg_30.nights
        assert got.bedtime_avg_7.time == sleep_stats.clock_text(want.avg_7.bedtime)


def wall_clock_night(world, user: str, tz: str, bed: datetime, wake: datetime):
    """An entry from local `bed` to local `wake` in `tz`, as the sleep service records it: its
    duration in real elapsed time, its date the local date it ended on."""
    zone = ZoneInfo(tz)
    # In UTC: Python subtracts two times of one zone by their wall clocks.
    start, end = (t.replace(tzinfo=zone).astimezone(UTC) for t in (bed, wake))
    state = world.entry(user, NOW, sleep_date=wake.date(), time_zone=tz)
    state.start_time.CopyFrom(ts(start))
    state.end_time.CopyFrom(ts(end))
    state.duration.CopyFrom(duration_pb2.Duration(seconds=int((end - start).total_seconds())))
    return state


async def test_streaks_follow_real_durations_and_local_dates_across_dst_and_flights(world):
    user = world.user(time_zone="Europe/Paris")
    # 23:00 to 07:00 in Paris each night of March 2026 from the 24th: eight hours on the
    # clock, but the night of the 29th, when clocks spring forward, lasts seven.
    for day in range(24, 32):
        bed, wake = datetime(2026, 3, day - 1, 23, 0), datetime(2026, 3, day, 7, 0)
        world.publish(
            sev.SleepEntryCreated(entry=wall_clock_night(world, user, "Europe/Paris", bed, wake)),
            user,
        )
    await world.settled()
    march = await world.reader.stats(Caller(user, ""), "2026-03-24", "2026-03-31")
    assert (march.current_streak, march.longest_streak) == (2, 5), "24th-28th, then 30th-31st"
    # In autumn the clocks fall back: seven hours on the clock are eight.
    autumn = wall_clock_night(
        world, user, "Europe/Paris", datetime(2026, 10, 25, 0, 0), datetime(2026, 10, 25, 7, 0)
    )
    assert autumn.duration.seconds == 8 * 3600
    world.publish(sev.SleepEntryCreated(entry=autumn), user)

    # A flight: Paris on April 1st, New York (west) for two nights, then Tokyo, east over
    # many zones, where the morning after the flight is already the 5th.
    for tz, bed, wake in (
        ("Europe/Paris", datetime(2026, 3, 31, 23, 0), datetime(2026, 4, 1, 7, 0)),
        ("America/New_York", datetime(2026, 4, 1, 23, 0), datetime(2026, 4, 2, 7, 30)),
        ("America/New_York", datetime(2026, 4, 2, 23, 0), datetime(2026, 4, 3, 7, 0)),
        ("Asia/Tokyo", datetime(2026, 4, 4, 23, 0), datetime(2026, 4, 5, 7, 0)),
    ):
        world.publish(
            sev.SleepEntryCreated(entry=wall_clock_night(world, user, tz, bed, wake)), user
        )
    await world.settled()
    april = await world.reader.stats(Caller(user, ""), "2026-04-01", "2026-04-05")
    assert april.nights_logged == 4
    assert april.longest_streak == 4, "the 4th was skipped by the calendar, not the sleeper"
    assert april.current_streak == 6, "counted back past the range: March 30th and 31st"
    autumn_stats = await world.reader.stats(Caller(user, ""), "2026-10-20", "2026-10-26")
    assert (autumn_stats.current_streak, autumn_stats.longest_streak) == (1, 1)

    # A higher goal, set in the profile, is what the streak is measured against from then on.
    profile = uev.UserProfile(
        user_id=user,
        username="s",
        time_zone="Asia/Tokyo",
        sleep_goal=duration_pb2.Duration(seconds=int(8.25 * 3600)),
    )
    world.publish(uev.UserProfileUpdated(profile=profile, changed_fields=["sleep_goal"]), user)
    await world.settled()
    higher = await world.reader.stats(Caller(user, ""), "2026-04-01", "2026-04-05")
    assert (higher.current_streak, higher.longest_streak) == (0, 1), "only New York's 8 h 30"


async def test_redelivered_stale_and_out_of_order_events_change_nothing(world):
    user = world.user()
    day = date(2026, 11, 10)
    first = night_state(world, user, day, "23:00", 7, "UTC")
    second = changed(first, hours=8)
    world.publish(sev.SleepEntryUpdated(entry=second, previous=first), user)  # before its create
    created = world.publish(sev.SleepEntryCreated(entry=first), user)
    world.publish(None, user, event=created)  # redelivered
    other = night_state(world, user, day + timedelta(days=1), "22:00", 6, "UTC")
    world.publish(sev.SleepEntryDeleted(entry=other), user)  # a delete before the create
    world.publish(sev.SleepEntryCreated(entry=other), user)  # a late create: stays deleted
    await world.settled()
    stats = await world.reader.stats(Caller(user, ""), "2026-11-01", "2026-11-30")
    assert stats.nights_logged == 1 and stats.average_duration.seconds == 8 * 3600


async def test_the_goal_and_time_zone_come_from_the_profile(world):
    user = world.user(time_zone="Pacific/Kiritimati")  # UTC+14: "today" differs from UTC's
    profile = uev.UserProfile(
        user_id=user,
        username="g",
        time_zone="Pacific/Kiritimati",
        sleep_goal=duration_pb2.Duration(seconds=9 * 3600),
    )
    world.publish(uev.UserProfileUpdated(profile=profile, changed_fields=["sleep_goal"]), user)
    today = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
    state = night_state(world, user, today, "23:00", 7, "Pacific/Kiritimati")
    world.publish(sev.SleepEntryCreated(entry=state), user)
    await world.settled()
    stats = await world.reader.stats(Caller(user, ""), "", "")
    assert (stats.end_date, stats.start_date) == (
        today.isoformat(),
        (today - timedelta(days=29)).isoformat(),
    )
    assert stats.sleep_goal.seconds == 9 * 3600 and stats.sleep_debt.seconds == 2 * 3600
    assert stats.nights_logged == 1 and stats.average_bedtime.time == "23:00"
    assert stats.average_bedtime.minutes_from_midnight == -60


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("2026-13-01", "", "start_date"),
        ("", "yesterday", "end_date"),
        ("2026-11-02", "2026-11-01", "start_date"),
        ("2010-01-01", "2026-11-01", "start_date"),
    ],
)
async def test_bad_date_ranges_are_refused_naming_the_field(world, start, end, field):
    with pytest.raises(InvalidArgument) as raised:
        await world.reader.stats(Caller(str(uuid.uuid4()), ""), start, end)
    assert raised.value.violations[0].field == field


async def test_replay_rebuilds_the_same_statistics(world):
    user = world.user()
    for i in range(10):
        state = night_state(
            world, user, date(2026, 11, 1) + timedelta(days=i), "23:30", 6 + i % 3, "UTC"
        )
        world.publish(sev.SleepEntryCreated(entry=state), user)
        if i % 4 == 0:
            world.publish(sev.SleepEntryDeleted(entry=state), user)
    await world.settled()
    before = await world.reader.stats(Caller(user, ""), "2026-11-01", "2026-11-30")
    await world.stop_consumers()
    report = await world.replay(replay.replay)
    assert report.events == world.published[world.sleep_topic] + world.published[world.user_topic]
    assert await world.reader.stats(Caller(user, ""), "2026-11-01", "2026-11-30") == before
    assert before.nights_logged == 7


# -- product analytics ---------------------------------------------------------------

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


def window(**fields):
    start, end = ts(HOUR - timedelta(hours=1)), ts(HOUR + timedelta(hours=3))
    return {"start_time": start, "end_time": end, **fields}


async def test_tracked_events_show_in_counts_breakdowns_and_traffic(world):
    at = HOUR + timedelta(minutes=5)
    alice = Caller(user_id=str(uuid.uuid4()), username="alice")
    visit = [  # an anonymous visitor: three page views in one session, then a tap
        client_event("a1", at, page="/feed", referrer="https://duck.example", anonymous_id="d1"),
        client_event("a2", at + timedelta(minutes=2), page="/stats", anonymous_id="d1"),
        client_event("a3", at + timedelta(minutes=4), page="/feed", anonymous_id="d1"),
        client_event(
            "a4",
            at + timedelta(minutes=5),
            name="tap",
            properties={"button": "follow"},
            anonymous_id="d1",
        ),
    ]
    assert (await world.track(visit)).accepted_count == 4
    bounce = [client_event("b1", at + timedelta(minutes=10), page="/feed")]
    await world.track(bounce, caller=alice)  # signed in: one page view, a bounce
    later = [client_event("c1", at + timedelta(minutes=50), page="/feed", anonymous_id="d1")]
    await world.track(later)  # 46 minutes idle: a second session of the first visitor
    await world.track(visit)  # resent whole: counted once
    await world.settled()

    hours = await world.reports.event_counts(
        pb.GetEventCountsRequest(name="page_view", granularity="hour", **window())
    )
    assert [p.count for p in hours.points] == [0, 5, 0, 0] and hours.total == 5
    minutes = await world.reports.event_counts(
        pb.GetEventCountsRequest(name="page_view", granularity="minute", **window())
    )
    assert minutes.total == 5 and len(minutes.points) == 240
    pages = await world.reports.breakdown(
        "page_view", "page", pb.ListTopPagesRequest(**window()), 0
    )
    assert [(r.value, r.count) for r in pages.rows] == [("/feed", 4), ("/stats", 1)]
    taps = await world.reports.breakdown(
        "tap", "property.button", pb.GetEventBreakdownRequest(**window()), 5
    )
    assert [(r.value, r.count) for r in taps.rows] == [("follow", 1)] and taps.total == 1
    referrers = await world.reports.breakdown(
        "page_view", "referrer", pb.GetEventBreakdownRequest(**window()), 5
    )
    assert [(r.value, r.count) for r in referrers.rows] == [("", 4), ("https://duck.example", 1)]

    traffic = await world.reports.traffic(pb.GetTrafficRequest(granularity="hour", **window()))
    busy = traffic.points[1]
    assert (busy.events, busy.page_views, busy.unique_visitors, busy.sessions) == (6, 5, 2, 3)
    assert busy.bounce_rate == pytest.approx(2 / 3)  # alice's and the late one-page session
    # the first session ran from :05 to :10, the two others had one event each
    assert busy.average_session_duration.seconds == round(5 * 60 / 3)
    assert traffic.unique_visitors == 2 and traffic.sessions == 3
    async with world.db.transaction() as session:
        stored = (
            await session.execute(select(func.count()).select_from(product_store.raw_events))
        ).scalar()
        addresses = (
            await session.execute(
                text(
                    "SELECT count(*) FROM raw_events WHERE visitor_id LIKE '%203.0.113%' "
                    "OR properties::text LIKE '%203.0.113%'"
                )
            )
        ).scalar()
    assert stored == 6 and addresses == 0


async def test_day_buckets_follow_the_callers_time_zone(world):
    midnight = datetime(
        2026, 11, 21, 0, 0, tzinfo=ZoneInfo("Asia/Kolkata")
    )  # 18:30 UTC the day before
    recent = datetime.now(UTC) - timedelta(hours=30)
    del midnight
    evening = recent.replace(minute=0, second=0, microsecond=0)
    kolkata = ZoneInfo("Asia/Kolkata")
    local_midnight = evening.astimezone(kolkata).replace(hour=0, minute=0) + timedelta(days=1)
    before = local_midnight - timedelta(minutes=1)
    after = local_midnight + timedelta(minutes=1)
    await world.track(
        [client_event("k1", before.astimezone(UTC)), client_event("k2", after.astimezone(UTC))]
    )
    await world.settled()
    request = pb.GetEventCountsRequest(
        name="page_view",
        granularity="day",
        start_time=ts(before - timedelta(hours=1)),
        end_time=ts(after + timedelta(hours=1)),
        time_zone="Asia/Kolkata",
    )
    days = await world.reports.event_counts(request)
    assert [(p.period.label, p.count) for p in days.points] == [
        (before.strftime("%Y-%m-%d"), 1),
        (after.strftime("%Y-%m-%d"), 1),
    ]
    in_utc = await world.reports.event_counts(
        pb.GetEventCountsRequest(
            name="page_view",
            granularity="day",
            start_time=request.start_time,
            end_time=request.end_time,
        )
    )
    assert [p.count for p in in_utc.points] == [2]  # 18:29 and 18:31 UTC: one UTC day


def high_water(bootstrap: str, topic: str) -> int:
    consumer = Consumer({**kafka_security(), "bootstrap.servers": bootstrap, "group.id": "probe"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        consumer.close()


async def test_a_malformed_batch_is_refused_whole_and_bots_are_dropped(world):
    at = HOUR + timedelta(minutes=1)
    before = high_water(world.bootstrap, world.client_topic)
    bad = [client_event("ok-1", at), client_event("ok-2", at, name="Bad Name")]
    with pytest.raises(InvalidArgument) as raised:
        await world.track(bad)
    assert raised.value.violations[0].field == "events[1].name"
    with pytest.raises(InvalidArgument, match=r"events\[0\].user_id"):
        await world.track([client_event("ok-3", at, user_id="someone-else")])
    bot = await world.track(
        [client_event("ok-4", at)], user_agent="Googlebot/2.1 (+http://www.google.com/bot.html)"
    )
    assert (bot.accepted_count, bot.dropped_count) == (0, 1)
    assert high_water(world.bootstrap, world.client_topic) == before, "nothing was appended"
    await world.track([client_event("ok-5", at)])
    await world.settled()
    counts = await world.reports.event_counts(
        pb.GetEventCountsRequest(name="page_view", granularity="hour", **window())
    )
    assert counts.total == 1


async def test_unique_visitors_survive_losing_redis(world, settings):
    """A HyperLogLog is approximate (visitor hashes use a random daily salt): counts are
    checked within its error, and a restored sketch must give exactly what it gave."""
    at = HOUR + timedelta(minutes=20)
    events = [client_event(f"v{i}", at, anonymous_id=f"device-{i}") for i in range(40)]
    await world.track(events)
    await world.settled()
    request = pb.GetTrafficRequest(granularity="hour", **window())
    counted = (await world.reports.traffic(request)).unique_visitors
    assert abs(counted - 40) <= HLL_SLACK
    await flush(world.redis_url)  # the cache is gone; PostgreSQL keeps the sketches
    assert (await world.reports.traffic(request)).unique_visitors == counted
    await flush(world.redis_url)
    await world.track(
        [
            client_event("v40", at, anonymous_id="device-40"),
            client_event("v41", at, anonymous_id="device-0"),
        ]
    )
    await world.settled()  # the consumer merges the stored sketch before adding
    merged = (await world.reports.traffic(request)).unique_visitors
    assert abs(merged - 41) <= HLL_SLACK and merged >= counted  # not 2: the sketch was merged


async def test_retention_drops_raw_events_and_minute_counts_but_keeps_rollups(world):
    at = HOUR + timedelta(minutes=30)
    await world.track([client_event("r1", at), client_event("r2", at)])
    await world.settled()
    sweeper = Sweeper(world.db, timedelta(days=30), timedelta(days=400), 3600)
    assert await sweeper.sweep() == 0  # nothing is old yet
    assert (
        await sweeper.sweep(now=datetime.now(UTC) + timedelta(days=31)) >= 4
    )  # 2 raw, 1 minute, salt
    async with world.db.transaction() as session:
        raw = (
            await session.execute(select(func.count()).select_from(product_store.raw_events))
        ).scalar()
    assert raw == 0
    hours = await world.reports.event_counts(
        pb.GetEventCountsRequest(name="page_view", granularity="hour", **window())
    )
    assert hours.total == 2
    old = pb.GetEventCountsRequest(
        name="page_view",
        granularity="minute",
        start_time=ts(datetime.now(UTC) - timedelta(days=40)),
        end_time=ts(datetime.now(UTC) - timedelta(days=39, hours=23)),
    )
    with pytest.raises(FailedPrecondition, match="kept for 30 days"):
        await world.reports.event_counts(old)


async def test_rollups_sessions_sketches_and_labels_go_after_the_rollup_retention(world):
    """Found by reading: they were never swept, so random values grew the store for ever."""
    at = HOUR + timedelta(minutes=30)
    await world.track([client_event("k1", at, page="/feed"), client_event("k2", at)])
    await world.settled()
    sweeper = Sweeper(world.db, timedelta(days=30), timedelta(days=400), 3600)
    await sweeper.sweep(now=datetime.now(UTC) + timedelta(days=31))
    kept = await row_counts(world, "counts", "sessions", "visitor_sketches", "admitted")
    assert all(kept.values()), kept
    await sweeper.sweep(now=datetime.now(UTC) + timedelta(days=401))
    assert await row_counts(world, *kept) == dict.fromkeys(kept, 0)


async def row_counts(world, *tables: str) -> dict[str, int]:
    async with world.db.transaction() as session:
        return {
            t: (await session.execute(text(f"SELECT count(*) FROM {t}"))).scalar() for t in tables
        }


async def test_each_day_counts_a_bounded_number_of_names_keys_and_values(
    settings, blank_database, new_topic
):
    """Found by reading: names, property keys and values were counted each as sent, so
    random ones grew the rollups without bound. Past the caps they count as "(other)"."""
    async with AnalyticsWorld.open(
        settings, blank_database, new_topic, caps=Caps(names=3, keys=2, values=3)
    ) as world:
        at = HOUR + timedelta(minutes=10)
        pages = [client_event(f"p{n}", at, page=f"/page/{n}") for n in range(5)]
        named = [client_event(f"n{n}", at, name=f"tap_{n}") for n in range(3)]
        keyed = client_event("k", at, name="tap_0", properties={"a": "1", "b": "2", "c": "3"})
        await world.track([*pages, *named, keyed])
        await world.settled()
        async with world.db.transaction() as session:
            rows = await session.execute(
                text(
                    "SELECT name, dimension, value, sum(events) FROM counts "
                    "GROUP BY name, dimension, value"
                )
            )
            counted = {(name, dim, value): n for name, dim, value, n in rows}
    names = {name for name, dim, _v in counted if dim == ""}
    assert names == {"page_view", "tap_0", "tap_1", OTHER}  # 4 names sent, 3 admitted
    assert counted[(OTHER, "", "")] == 1
    page_values = {v: n for (name, dim, v), n in counted.items() if dim == "page"}
    assert len(page_values) == 4 and page_values[OTHER] == 2  # 3 of 5 pages, then "(other)"
    keys = {dim for (name, dim, _v) in counted if name == "tap_0" and dim.startswith("property.")}
    assert keys == {"property.a", "property.b", f"property.{OTHER}"}


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.GetEventCountsRequest(name="Bad Name"), "name"),
        (pb.GetEventCountsRequest(name="tap", granularity="week"), "granularity"),
        (pb.GetEventCountsRequest(name="tap", time_zone="Mars/Olympus"), "time_zone"),
        (
            pb.GetEventCountsRequest(
                name="tap", granularity="minute", start_time=ts(HOUR - timedelta(days=2))
            ),
            "start_time",
        ),
    ],
)
async def test_bad_queries_name_the_field(world, request_, field):
    with pytest.raises(InvalidArgument) as raised:
        await world.reports.event_counts(request_)
    assert raised.value.violations[0].field == field
