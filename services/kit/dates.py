"""The span of dates Zentry holds: nights from the year 2000 on, nothing after today anywhere.

A night must end at or after EPOCH (2000-01-01T00:00Z) and not in the future,
so every sleep date lies between FIRST_DATE (EPOCH's date in the westernmost
zone, UTC-12) and the date in the easternmost zone now (UTC+14). A date a
caller asks about (a board's window, a statistics range) may reach `ahead`
past that (a week or a month still under way, a calendar's view), and no
further: no request makes a store work, or keep keys, for years that can hold
nothing, or overflows the calendar at year 1 or 9999.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.kit.errors import InvalidArgument

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FIRST_DATE = date(1999, 12, 31)
_EASTERNMOST = timedelta(hours=14)


def last_date(now: datetime) -> date:
    """The latest date anywhere on Earth at `now`."""
    return (now.astimezone(UTC) + _EASTERNMOST).date()


def check_date(day: date, field: str, now: datetime, ahead: timedelta) -> date:
    """`day` if it lies between FIRST_DATE and `ahead` past the latest date anywhere now;
    InvalidArgument naming `field` if not."""
    last = last_date(now) + ahead
    if not FIRST_DATE <= day <= last:
        raise InvalidArgument.field(
            field, f"must be between {FIRST_DATE} and {last}; got {day} (no night is dated outside)"
        )
    return day
