"""Streak boards' pure rules: runs of sleep dates whose nights met their sleeper's goal.

A night meets the goal when the date's nights (the daily window's sum) last at
least the user's sleep goal. A user's runs of consecutive such dates are kept as
(first, last) pairs (store.streak_runs): a change on a date joins it to the
runs ending the day before and starting the day after, or splits the run that
holds it. A window's streak is its longest run clipped to the window's dates
(all-time: the longest run); the board ranks the longest, the first to reach
it first, as every board does (domain.board_score).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import date, timedelta

from services.leaderboard import domain

DAY = timedelta(days=1)
#: The bounds of all-time, as a date range.
FOREVER = (date.min, date.max)

Run = tuple[date, date]


def met(seconds: int, nights: int, goal_seconds: int) -> bool:
    return nights > 0 and seconds >= goal_seconds


def rerun(runs: Iterable[Run], day: date, meets: bool) -> list[Run]:
    """A user's runs (at least those holding `day` or touching it) once `day` meets the goal
    or not; in date order."""
    runs = sorted(runs)
    holding = [r for r in runs if r[0] <= day <= r[1]]
    if meets:
        if holding:
            return runs
        joined = [r for r in runs if r[1] == day - DAY or r[0] == day + DAY]
        first = min([day, *(r[0] for r in joined)])
        last = max([day, *(r[1] for r in joined)])
        return sorted([*(r for r in runs if r not in joined), (first, last)])
    if not holding:
        return runs
    first, last = holding[0]
    pieces = [p for p in ((first, day - DAY), (day + DAY, last)) if p[0] <= p[1]]
    return sorted([*(r for r in runs if r != holding[0]), *pieces])


def runs_of(days: Iterable[date]) -> list[Run]:
    """The runs of these dates (each a date that met the goal)."""
    runs: list[Run] = []
    for day in sorted(set(days)):
        if runs and runs[-1][1] == day - DAY:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def longest(runs: Iterable[Run], first: date, last: date) -> int:
    """The longest run within [first, last], clipped to it."""
    return max(
        (
            (min(r[1], last) - max(r[0], first)).days + 1
            for r in runs
            if r[1] >= first and r[0] <= last
        ),
        default=0,
    )


def span(days: Iterable[date]) -> tuple[date, date]:
    """The first and last dates of every window (but all-time) holding one of `days`."""
    bounds = [
        window_dates(window)
        for day in days
        for window in domain.windows_of(day)
        if window != domain.ALL_TIME
    ]
    return min(b[0] for b in bounds), max(b[1] for b in bounds)


@functools.lru_cache(maxsize=4096)
def window_dates(window_id: str) -> tuple[date, date]:
    """A window's first and last dates; all-time's are FOREVER."""
    kind = domain.kind_of(window_id)
    span = (
        None
        if kind == domain.ALL_TIME
        else domain.first_and_last_day(kind, domain.day_of(window_id))
    )
    return span or FOREVER
