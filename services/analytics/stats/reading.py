"""GetSleepStats and GetSleepTrend: the caller's nights, summarized (stats.domain) as protos.

The caller's zone (which day is today) and goal (what sleep debt is measured
against) are read from the user service, so a change they just made counts;
the sleepers copy answers when it cannot (services.kit.profiles).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from google.protobuf import duration_pb2
from sqlalchemy.ext.asyncio import AsyncSession
from zentry.analytics.v1 import sleep_stats_service_pb2 as pb

from services.analytics.stats import domain, store
from services.analytics.stats.domain import DEFAULT_GOAL_SECONDS, ClockMean, Night
from services.kit import dates
from services.kit.auth import Caller
from services.kit.db import Database
from services.kit.errors import InvalidArgument
from services.kit.profiles import OwnProfiles, Profile
from services.kit.zones import zone_or_utc

DEFAULT_DAYS = 30
MAX_STATS_DAYS = 3660  # ten years
MAX_TREND_DAYS = 732  # two years of daily points
RANGE_AHEAD = timedelta(days=366)  # a range may end in the future (a calendar's view)
#: How far back before a range a current streak is counted: ten years of nights.
STREAK_LOOKBACK = 3660


@dataclass(frozen=True)
class _Asked:
    session: AsyncSession
    sleeper: store.Sleeper | None
    start: date
    end: date


class SleepStatsReader:
    def __init__(self, db: Database, profiles: OwnProfiles):
        self._db = db
        self._profiles = profiles

    @asynccontextmanager
    async def _asked(
        self, caller: Caller, start_date: str, end_date: str, max_days: int
    ) -> AsyncIterator[_Asked]:
        """A transaction, with the caller as a sleeper and the range they asked for.

        The zone and goal are the user service's, fresh (asked before the
        transaction begins), else the sleepers copy's; raises InvalidArgument for
        a bad range.
        """
        fresh = await self._profiles.fresh(caller)
        async with self._db.transaction() as session:
            sleeper = _sleeper(fresh) or await store.sleeper(session, caller.user_id)
            start, end = _dates(start_date, end_date, sleeper, max_days)
            yield _Asked(session, sleeper, start, end)

    async def stats(self, caller: Caller, start_date: str, end_date: str) -> pb.SleepStats:
        async with self._asked(caller, start_date, end_date, MAX_STATS_DAYS) as asked:
            start, end = asked.start, asked.end
            sleeper = asked.sleeper
            goal = sleeper.goal_seconds if sleeper else DEFAULT_GOAL_SECONDS
            nights = await store.nights_between(asked.session, caller.user_id, start, end)
            streaks = domain.streaks(nights, goal, end)
            current = streaks.current
            if current and current == len(nights):  # it may have begun before the range
                before = await store.nights_before(
                    asked.session, caller.user_id, start, STREAK_LOOKBACK
                )
                current = domain.streaks([*before, *nights], goal, end).current
        s = domain.summarize(nights, goal)
        return pb.SleepStats(
            start_date=start.isoformat(),
            end_date=end.isoformat(),
            nights_logged=s.nights,
            average_duration=_duration(s.average_seconds),
            median_duration=_duration(s.median_seconds),
            duration_stddev=_duration(s.stddev_seconds),
            average_bedtime=_clock(s.bedtime),
            average_wake_time=_clock(s.wake_time),
            bedtime_spread_minutes=round(s.bedtime.spread, 1) if s.bedtime else 0.0,
            wake_time_spread_minutes=round(s.wake_time.spread, 1) if s.wake_time else 0.0,
            consistency_score=s.consistency,
            sleep_goal=_duration(s.goal_seconds),
            sleep_debt=_duration(s.debt_seconds),
            nights_below_goal=s.nights_below_goal,
            best_night=_summary(s.best),
            worst_night=_summary(s.worst),
            average_quality=round(s.average_quality, 2),
            rated_nights=s.rated_nights,
            current_streak=current,
            longest_streak=streaks.longest,
            weekdays=[
                pb.WeekdayStats(
                    weekday=w.weekday,
                    nights=w.nights,
                    average_duration=_duration(w.average_seconds),
                    average_quality=round(w.average_quality, 2),
                )
                for w in s.weekdays
            ],
        )

    async def trend(self, caller: Caller, start_date: str, end_date: str) -> pb.SleepTrend:
        async with self._asked(caller, start_date, end_date, MAX_TREND_DAYS) as asked:
            start, end = asked.start, asked.end
            before = await store.nights_before(asked.session, caller.user_id, start, 29)
            nights = await store.nights_between(asked.session, caller.user_id, start, end)
        points = []
        for p in domain.trend([*before, *nights], start, end):
            point = pb.TrendPoint(sleep_date=p.sleep_date.isoformat(), logged=p.night is not None)
            if p.night is not None:
                point.duration.CopyFrom(_duration(p.night.seconds))
                point.bedtime.CopyFrom(_clock(ClockMean(p.night.bedtime, 0.0)))
            for avg, duration, bedtime, count in (
                (p.avg_7, "duration_avg_7", "bedtime_avg_7", "avg_7_nights"),
                (p.avg_30, "duration_avg_30", "bedtime_avg_30", "avg_30_nights"),
            ):
                if avg is not None:
                    getattr(point, duration).CopyFrom(_duration(avg.seconds))
                    getattr(point, bedtime).CopyFrom(_clock(ClockMean(avg.bedtime, 0.0)))
                    setattr(point, count, avg.nights)
            points.append(point)
        return pb.SleepTrend(start_date=start.isoformat(), end_date=end.isoformat(), points=points)


def _sleeper(profile: Profile | None) -> store.Sleeper | None:
    if profile is None:
        return None
    return store.Sleeper(
        profile.time_zone or "UTC", profile.sleep_goal_seconds or DEFAULT_GOAL_SECONDS
    )


def _dates(
    start_text: str, end_text: str, sleeper: store.Sleeper | None, max_days: int
) -> tuple[date, date]:
    """The range asked for; an empty end is today in the caller's zone, an empty start 29 days
    before it."""
    end = _date(end_text, "end_date") if end_text else _today(sleeper)
    start = _date(start_text, "start_date") if start_text else end - timedelta(DEFAULT_DAYS - 1)
    if start > end:
        raise InvalidArgument.field("start_date", "must not be after end_date")
    if (end - start).days + 1 > max_days:
        raise InvalidArgument.field("start_date", f"a range covers at most {max_days} days")
    return start, end


def _date(text: str, field: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument.field(field, f"{text!r} is not a date like 2026-11-21") from None
    return dates.check_date(day, field, datetime.now(UTC), RANGE_AHEAD)


def _today(sleeper: store.Sleeper | None) -> date:
    return datetime.now(zone_or_utc(sleeper.time_zone) if sleeper else UTC).date()


def _duration(seconds: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=round(seconds))  # whole seconds are precise enough


def _clock(mean: ClockMean | None) -> pb.ClockTime | None:
    if mean is None:
        return None
    return pb.ClockTime(
        time=domain.clock_text(mean.minutes),
        minutes_from_midnight=domain.from_midnight(mean.minutes),
    )


def _summary(night: Night | None) -> pb.NightSummary | None:
    if night is None:
        return None
    return pb.NightSummary(
        sleep_date=night.sleep_date.isoformat(), duration=_duration(night.seconds)
    )
