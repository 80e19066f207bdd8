"""The leaderboards' pure rules: windows, what a night adds to them, and board order.

A night counts in the windows that contain its sleep date, the local date in
the zone it was slept in on which it ended (the sleep service's rule). So a
window is counted in each user's own calendar: a night in Tokyo and one in
Los Angeles that both ended "this morning" both count for today.

Windows: daily (2026-11-21), weekly by ISO week (2026-W47), monthly
(2026-11) and all-time. Boards: total duration and average duration (in whole
minutes) and nights; the average board lists only users with at least the
window's minimum number of nights.

Order: a higher value ranks higher; between equal values, the user who
reached it first. Both are packed into one Redis score, exactly (below 2**53):
value * 2**30 + (2**30 - 1 - seconds since 2020 when the value was reached).
Users equal in both are ordered by user id, as Redis orders equal scores.

This module is the reference for value, qualifies and board_score; the boards'
update script (boards._UPDATE, in Lua) mirrors them, and
tests/integration/test_leaderboard_scores.py checks on a real Redis that the two
agree. Change one, change the other.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from services.kit.errors import InvalidArgument

METRICS = ("total-duration", "nights", "average-duration")
WINDOWS = ("daily", "weekly", "monthly", "all-time")
ALL_TIME = "all-time"
SCOPES = ("global", "following")

_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_TIE_BITS = 30
TIE_SPAN = 1 << _TIE_BITS  # seconds: until 2054
MAX_VALUE = (1 << (53 - _TIE_BITS)) - 1  # whole minutes or nights a board can hold


def window_id(kind: str, day: date) -> str:
    """The id of the `kind` window that contains `day`."""
    if kind == "daily":
        return day.isoformat()
    if kind == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if kind == "monthly":
        return f"{day.year}-{day.month:02d}"
    if kind == ALL_TIME:
        return ALL_TIME
    raise ValueError(kind)


@functools.lru_cache(maxsize=4096)
def windows_of(day: date) -> tuple[str, ...]:
    """Every window a night with this sleep date counts in."""
    return tuple(window_id(kind, day) for kind in WINDOWS)


def day_of(window: str) -> date:
    """The first day of a window, from its id (not for all-time)."""
    kind = kind_of(window)
    if kind == "daily":
        return date.fromisoformat(window)
    if kind == "weekly":
        year, week = window.split("-W")
        return date.fromisocalendar(int(year), int(week), 1)
    year, month = window.split("-")
    return date(int(year), int(month), 1)


def kind_of(window: str) -> str:
    if window == ALL_TIME:
        return ALL_TIME
    if "-W" in window:
        return "weekly"
    return "daily" if window.count("-") == 2 else "monthly"


def first_and_last_day(kind: str, day: date) -> tuple[date, date] | None:
    """The window's first and last dates (inclusive); None for all-time."""
    if kind == "daily":
        return day, day
    if kind == "weekly":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=6)
    if kind == "monthly":
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return first, following - timedelta(days=1)
    return None


@dataclass(frozen=True)
class Totals:
    """A user's sums in one window."""

    seconds: int
    nights: int


# value, qualifies and board_score: boards._UPDATE computes the same in Lua (see above).


def value(metric: str, totals: Totals) -> int:
    """What the board for `metric` ranks by: whole minutes, or nights."""
    if metric == "nights":
        return totals.nights
    if metric == "total-duration":
        return totals.seconds // 60
    return totals.seconds // totals.nights // 60 if totals.nights else 0


def qualifies(metric: str, kind: str, totals: Totals, min_nights: dict[str, int]) -> bool:
    """Whether the user appears on the board at all."""
    if totals.nights <= 0:
        return False
    return metric != "average-duration" or totals.nights >= min_nights[kind]


def since_epoch(when: datetime) -> int:
    """Whole seconds from 2020 to `when` (toward zero; negative before), not yet clamped."""
    return int((when - _EPOCH).total_seconds())


def board_score(value_: int, reached_at: datetime) -> int:
    """Higher value first; then who reached it first. Exact as a Redis score (a double)."""
    since = min(max(since_epoch(reached_at), 0), TIE_SPAN - 1)
    return min(value_, MAX_VALUE) * TIE_SPAN + (TIE_SPAN - 1 - since)


def value_of(score: int) -> int:
    return int(score) >> _TIE_BITS


def reached_of(score: int) -> datetime:
    """When a board score's value was reached (to the second), as board_score packed it."""
    since = TIE_SPAN - 1 - (int(score) & (TIE_SPAN - 1))
    return _EPOCH + timedelta(seconds=since)


def deltas(
    added: tuple[date, int] | None, removed: tuple[date, int] | None
) -> dict[str, tuple[int, int]]:
    """Per window: (seconds, nights) a change adds; `added`/`removed` are (sleep date, seconds).

    An update is its previous night removed and its new night added; windows
    both touch get the net change, and a window left unchanged is left out.
    """
    out: dict[str, tuple[int, int]] = {}
    for night, sign in ((removed, -1), (added, 1)):
        if night is None:
            continue
        day, seconds = night
        for window in windows_of(day):
            s, n = out.get(window, (0, 0))
            out[window] = (s + sign * seconds, n + sign)
    return {w: d for w, d in out.items() if d != (0, 0)}


#: Every board's metric: the summed ones (METRICS, kept in Redis), then streak (streaks.py).
STREAK = "streak"
BOARDS = (*METRICS, STREAK)


def parse_metric(text: str) -> str:
    if text not in BOARDS:
        raise InvalidArgument.field("metric", f"must be one of {', '.join(BOARDS)}; got {text!r}")
    return text


def parse_window(text: str) -> str:
    if text not in WINDOWS:
        raise InvalidArgument.field("window", f"must be one of {', '.join(WINDOWS)}; got {text!r}")
    return text


def parse_scope(text: str) -> str:
    scope = text or "global"
    if scope not in SCOPES:
        raise InvalidArgument.field("scope", f"must be one of {', '.join(SCOPES)}; got {text!r}")
    return scope


def parse_min_nights(text: str) -> dict[str, int]:
    """`daily=1,weekly=3,monthly=7,all-time=14` (the default) into a mapping."""
    out = {"daily": 1, "weekly": 3, "monthly": 7, ALL_TIME: 14}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, number = part.partition("=")
        if kind not in WINDOWS or not number.isdigit() or int(number) < 1:
            raise ValueError(f"expected window=nights (at least 1) for one of {WINDOWS}: {part!r}")
        out[kind] = int(number)
    return out
