"""Sleep statistics over a person's nights: pure functions, no I/O.

A night is one sleep date. A streak is a run of nights that each met the
goal, on consecutive dates. Clock times (bedtime, wake time) are minutes after
local midnight and are averaged on the circle: 23:30 and 00:30 average to
00:00, not to noon. The spread of clock times is the circular standard
deviation, sqrt(-2 ln R) in the same units, which for tight clusters is the
ordinary standard deviation.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

MINUTES_PER_DAY = 1440
#: Average clock-time spread (minutes) at which the consistency score reaches 0.
CONSISTENCY_ZERO_AT = 90.0
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: The nightly goal of a user whose profile sets none.
DEFAULT_GOAL_SECONDS = 8 * 3600
#: Two nights on dates further apart still follow each other in a streak when the second
#: ended at most this long after the first: the calendar skipped a date (a flight east
#: across the date line), not the sleeper. A night missed ends the two about 48 hours apart.
STREAK_GAP = timedelta(hours=36)


@dataclass(frozen=True)
class Night:
    sleep_date: date
    seconds: int
    #: Minutes after local midnight at which the night's longest sleep began and ended.
    bedtime: int
    wake_time: int
    #: Mean rating of the date's rated entries, None if none was rated.
    quality: float | None = None
    #: When the date's last entry ended (an instant); None if not known.
    last_end: datetime | None = None


@dataclass(frozen=True)
class ClockMean:
    minutes: float  # 0 <= minutes < 1440
    spread: float  # circular standard deviation, minutes


def clock_mean(minutes: Sequence[float]) -> ClockMean | None:
    """The circular mean and spread of clock times; None for no times."""
    if not minutes:
        return None
    angles = [m * 2 * math.pi / MINUTES_PER_DAY for m in minutes]
    s = sum(math.sin(a) for a in angles) / len(angles)
    c = sum(math.cos(a) for a in angles) / len(angles)
    r = math.hypot(s, c)
    if r < 1e-9:  # evenly spread around the clock: no meaningful mean
        return ClockMean(0.0, MINUTES_PER_DAY / 2)
    mean = math.atan2(s, c) * MINUTES_PER_DAY / (2 * math.pi) % MINUTES_PER_DAY
    spread = math.sqrt(max(0.0, -2 * math.log(min(r, 1.0)))) * MINUTES_PER_DAY / (2 * math.pi)
    return ClockMean(mean, spread)


def from_midnight(minutes: float) -> int:
    """Minutes after midnight as minutes from the nearest midnight: 1421 -> -19, 30 -> 30."""
    m = round(minutes) % MINUTES_PER_DAY
    return m - MINUTES_PER_DAY if m >= MINUTES_PER_DAY // 2 else m


def clock_text(minutes: float) -> str:
    m = round(minutes) % MINUTES_PER_DAY
    return f"{m // 60:02d}:{m % 60:02d}"


def consistency_score(bedtime_spread: float, wake_spread: float) -> int:
    """100 when bedtime and wake time never vary, falling linearly to 0 at 90 minutes."""
    average = (bedtime_spread + wake_spread) / 2
    return max(0, round(100 * (1 - average / CONSISTENCY_ZERO_AT)))


@dataclass(frozen=True)
class WeekdayStats:
    weekday: str
    nights: int
    average_seconds: float
    average_quality: float


@dataclass(frozen=True)
class Stats:
    nights: int
    average_seconds: float
    median_seconds: float
    stddev_seconds: float
    bedtime: ClockMean | None
    wake_time: ClockMean | None
    consistency: int
    goal_seconds: int
    debt_seconds: int
    nights_below_goal: int
    best: Night | None
    worst: Night | None
    average_quality: float
    rated_nights: int
    weekdays: tuple[WeekdayStats, ...]


def summarize(nights: Sequence[Night], goal_seconds: int) -> Stats:
    """Everything GetSleepStats reports about these nights (any order)."""
    nights = sorted(nights, key=lambda n: n.sleep_date)
    durations = [n.seconds for n in nights]
    bedtime = clock_mean([n.bedtime for n in nights])
    wake = clock_mean([n.wake_time for n in nights])
    rated = [n.quality for n in nights if n.quality is not None]
    return Stats(
        nights=len(nights),
        average_seconds=statistics.fmean(durations) if durations else 0.0,
        median_seconds=statistics.median(durations) if durations else 0.0,
        stddev_seconds=statistics.pstdev(durations) if durations else 0.0,
        bedtime=bedtime,
        wake_time=wake,
        consistency=consistency_score(bedtime.spread, wake.spread) if nights else 0,
        goal_seconds=goal_seconds,
        debt_seconds=max(0, sum(goal_seconds - d for d in durations)),
        nights_below_goal=sum(1 for d in durations if d < goal_seconds),
        # max/min keep the first of equals: the earlier date wins a tie.
        best=max(nights, key=lambda n: n.seconds) if nights else None,
        worst=min(nights, key=lambda n: n.seconds) if nights else None,
        average_quality=statistics.fmean(rated) if rated else 0.0,
        rated_nights=len(rated),
        weekdays=tuple(
            _weekday(i, [n for n in nights if n.sleep_date.weekday() == i]) for i in range(7)
        ),
    )


@dataclass(frozen=True)
class Streaks:
    #: The run that reaches `today` or the day before (tonight may still extend it).
    current: int
    longest: int


def follows(before: Night, after: Night) -> bool:
    """Whether `after` is the next night after `before` in a streak."""
    if after.sleep_date - before.sleep_date == timedelta(days=1):
        return True
    if before.last_end is None or after.last_end is None:
        return False
    return after.sleep_date > before.sleep_date and after.last_end - before.last_end <= STREAK_GAP


def streaks(nights: Sequence[Night], goal_seconds: int, today: date) -> Streaks:
    """The current and the longest run of nights meeting the goal (`nights` in any order).

    A night below the goal, or a date with no night, ends a run; dates after
    `today` are not looked at.
    """
    run = longest = 0
    previous: Night | None = None
    for night in sorted((n for n in nights if n.sleep_date <= today), key=_date):
        if night.seconds < goal_seconds:
            run = 0
        elif run and previous is not None and follows(previous, night):
            run += 1
        else:
            run = 1
        longest = max(longest, run)
        previous = night
    alive = previous is not None and today - previous.sleep_date <= timedelta(days=1)
    return Streaks(current=run if alive else 0, longest=longest)


def _weekday(index: int, nights: list[Night]) -> WeekdayStats:
    rated = [n.quality for n in nights if n.quality is not None]
    return WeekdayStats(
        weekday=WEEKDAYS[index],
        nights=len(nights),
        average_seconds=statistics.fmean(n.seconds for n in nights) if nights else 0.0,
        average_quality=statistics.fmean(rated) if rated else 0.0,
    )


@dataclass(frozen=True)
class MovingAverage:
    nights: int  # how many nights it is over (fewer than the window near the start)
    seconds: float
    bedtime: float  # circular mean, minutes after midnight


@dataclass(frozen=True)
class TrendPoint:
    sleep_date: date
    night: Night | None
    avg_7: MovingAverage | None
    avg_30: MovingAverage | None


def trend(nights: Sequence[Night], start: date, end: date) -> list[TrendPoint]:
    """One point per date from start to end; averages over the last 7 and 30 logged nights.

    `nights` should include up to 29 nights before `start`, so the first
    points average over the same window as the rest.
    """
    by_date = {n.sleep_date: n for n in nights}
    history = sorted((n for n in by_date.values() if n.sleep_date < start), key=_date)[-29:]
    recent: list[Night] = list(history)
    points = []
    day = start
    while day <= end:
        night = by_date.get(day)
        if night is not None:
            recent.append(night)
            recent = recent[-30:]
        points.append(TrendPoint(day, night, _moving(recent[-7:]), _moving(recent)))
        day += timedelta(days=1)
    return points


def _date(night: Night) -> date:
    return night.sleep_date


def _moving(nights: list[Night]) -> MovingAverage | None:
    if not nights:
        return None
    mean = clock_mean([n.bedtime for n in nights])
    return MovingAverage(
        nights=len(nights),
        seconds=statistics.fmean(n.seconds for n in nights),
        bedtime=mean.minutes if mean else 0.0,
    )
