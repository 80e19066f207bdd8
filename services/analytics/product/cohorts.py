"""Retention cohorts: users grouped by the local day or week they were first seen, and how many
came back in each later one. Pure, no I/O.

What is stored (by the rollup consumer, store.py): each signed-in user's
first and last event time, and for each UTC day they were active, which of
its 96 15-minute buckets saw an event of theirs (a 96-bit mask). Every time
zone in use today is a whole number of 15 minutes from UTC, so any zone's
day or week is a run of whole buckets, and "was this user active in that
local week" has an exact answer from the masks of the UTC days it overlaps.
A cohort is the caller's local period containing the first event time
itself, so no zone is favoured when the rows are written.

Only users: an anonymous visitor is a hash made with the salt of the UTC
day their events arrive on (tracking.py), so the same person is someone new
each day, and a cohort of them could never show anyone coming back. Retention of
visitors is refused rather than shown as a table of zeros.

Weeks start on Monday (ISO) and are labelled by that Monday's date; a day
or week is as long as the zone's clocks make it (23 or 25 hours, 167 or
169 hours when they change).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

QUARTER = timedelta(minutes=15)
QUARTERS = 96  # 15-minute buckets in a UTC day
GRANULARITIES = ("day", "week")


def quarter_of(when: datetime) -> tuple[date, int]:
    """The UTC day `when` falls on, and its 15-minute bucket there (0 to 95)."""
    when = when.astimezone(UTC)
    return when.date(), (when.hour * 60 + when.minute) // 15


@dataclass
class Activity:
    """What some events add to the store: each user's first and last event time, and each
    (user, UTC day)'s mask of active buckets."""

    spans: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    days: dict[tuple[str, date], int] = field(default_factory=dict)

    def add(self, user_id: str, when: datetime) -> None:
        first, last = self.spans.get(user_id, (when, when))
        self.spans[user_id] = (min(first, when), max(last, when))
        day, quarter = quarter_of(when)
        self.days[user_id, day] = self.days.get((user_id, day), 0) | 1 << quarter


def encode(mask: int) -> str:
    """A day's buckets as PostgreSQL's bit(96) text: character i is bucket i."""
    return "".join("1" if mask >> i & 1 else "0" for i in range(QUARTERS))


def decode(text: str) -> int:
    """The inverse of `encode`: bit i of the result is bucket i."""
    return int(text[::-1], 2)


@dataclass(frozen=True)
class Span:
    """One local day or week: its label and its UTC bounds [start, end)."""

    label: str
    start: datetime
    end: datetime


def local_start(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant the local `day` begins. Where the clocks skip midnight (America/Santiago
    in September), a missing 00:00 is read with the offset before the change, which is the
    day's first instant (01:00)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def period_of(when: datetime, granularity: str, tz: ZoneInfo) -> date:
    """The local date the day or week containing `when` begins on."""
    day = when.astimezone(tz).date()
    return day - timedelta(days=day.weekday()) if granularity == "week" else day


def spans(first: datetime, count: int, granularity: str, tz: ZoneInfo) -> list[Span]:
    """`count` consecutive local periods, the first one containing `first`."""
    step = timedelta(weeks=1) if granularity == "week" else timedelta(days=1)
    day = period_of(first, granularity, tz)
    found = []
    start = local_start(day, tz)
    for _ in range(count):
        day += step
        end = local_start(day, tz)
        found.append(Span((day - step).isoformat(), start, end))
        start = end
    return found


def day_masks(day: date, periods: list[Span]) -> list[tuple[int, int]]:
    """For one UTC day, the periods it overlaps: (index in `periods`, mask of its buckets in
    that period), in order. A bucket belongs to the period its start falls in."""
    starts = [p.start for p in periods]
    midnight = datetime.combine(day, time(0), tzinfo=UTC)
    masks: dict[int, int] = {}
    for i in range(QUARTERS):
        moment = midnight + i * QUARTER
        index = bisect_right(starts, moment) - 1
        if index < 0 or moment >= periods[index].end:
            continue
        masks[index] = masks.get(index, 0) | 1 << i
    return sorted(masks.items())


@dataclass(frozen=True)
class CohortRow:
    period: Span
    #: Users first seen in the period.
    size: int
    #: Index k: how many of them were active k periods after it (index 0: all of them), for
    #: each later period that has begun by now.
    returned: list[int]


def table(
    periods: list[Span],
    cohorts: int,
    following: int,
    first_seen: Mapping[str, datetime],
    activity: Iterable[tuple[str, date, int]],
    now: datetime,
) -> list[CohortRow]:
    """The retention table: the first `cohorts` of `periods` are the cohorts, each followed by
    up to `following` periods (as many as `periods` holds and have begun by `now`).

    `first_seen` holds each user first seen in a cohort period (others are ignored);
    `activity` the (user, UTC day, bucket mask) rows of those users.
    """
    starts = [p.start for p in periods]
    cohort_of = {
        user: bisect_right(starts, when) - 1
        for user, when in first_seen.items()
        if periods[0].start <= when < periods[cohorts - 1].end
    }
    masks_of: dict[date, list[tuple[int, int]]] = {}
    came_back: dict[tuple[int, int], set[str]] = defaultdict(set)
    for user, day, mask in activity:
        cohort = cohort_of.get(user)
        if cohort is None:
            continue
        if day not in masks_of:
            masks_of[day] = day_masks(day, periods)
        for index, in_period in masks_of[day]:
            after = index - cohort
            if 0 < after <= following and mask & in_period:
                came_back[cohort, after].add(user)
    sizes = [0] * cohorts
    for cohort in cohort_of.values():
        sizes[cohort] += 1
    rows = []
    for c in range(cohorts):
        begun = [k for k in range(following + 1) if c + k < len(periods) and starts[c + k] <= now]
        returned = [sizes[c] if k == 0 else len(came_back[c, k]) for k in begun]
        rows.append(CohortRow(periods[c], sizes[c], returned))
    return rows
