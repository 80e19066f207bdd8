"""Query ranges cut into a time zone's minutes, hours or days: pure, no I/O.

Rollups are kept per UTC minute and per 15-minute bucket; every time zone in
use today is a whole number of 15 minutes from UTC, so a local hour or day
is always a run of whole buckets. A period is labelled by its local start;
the hour repeated when clocks go back is one period of two hours, and the
hour skipped when they go forward does not appear.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.kit import dates
from services.kit.errors import InvalidArgument

BUCKET = timedelta(minutes=15)
STEP = {"minute": timedelta(minutes=1), "hour": BUCKET, "day": BUCKET}
LABEL = {"minute": "%Y-%m-%dT%H:%M", "hour": "%Y-%m-%dT%H:00", "day": "%Y-%m-%d"}
DEFAULT_SPAN = {"minute": timedelta(hours=1), "hour": timedelta(days=7), "day": timedelta(days=7)}


@dataclass
class Period:
    label: str
    start: datetime  # UTC
    #: The rollup buckets (minutes, or 15-minute buckets) that make it up.
    buckets: list[datetime] = field(default_factory=list)


def granularity_of(value: str, allowed: tuple[str, ...], field_name: str = "granularity") -> str:
    value = value or "day"
    if value not in allowed:
        raise InvalidArgument.field(field_name, f"must be one of {', '.join(allowed)}")
    return value


def time_range(
    start: datetime | None, end: datetime | None, granularity: str, now: datetime
) -> tuple[datetime, datetime]:
    """[start, end) with the defaults filled in; InvalidArgument if it is empty, or reaches
    before dates.EPOCH (nothing is kept from then, and a default start would not exist)."""
    for field_name, given in (("start_time", start), ("end_time", end)):
        if given is not None and given < dates.EPOCH:
            raise InvalidArgument.field(
                field_name, f"must be at or after {dates.EPOCH:%Y-%m-%dT%H:%M:%SZ}"
            )
    end = end or now
    start = start or end - DEFAULT_SPAN[granularity]
    if start >= end:
        raise InvalidArgument.field("start_time", "must be before end_time")
    return start, end


def split(
    start: datetime, end: datetime, granularity: str, tz: ZoneInfo, max_span: timedelta
) -> list[Period]:
    """The periods of [start, end) in `tz`, the first aligned down to its period's start."""
    if end - start > max_span:
        raise InvalidArgument.field(
            "start_time", f"{granularity} periods cover at most {_span(max_span)} per query"
        )
    step = STEP[granularity]
    moment = align(start, granularity, tz)
    periods: list[Period] = []
    while moment < end:
        label = moment.astimezone(tz).strftime(LABEL[granularity])
        if not periods or periods[-1].label != label:
            periods.append(Period(label, moment))
        periods[-1].buckets.append(moment)
        moment += step
    return periods


def align(when: datetime, granularity: str, tz: ZoneInfo) -> datetime:
    """The start (UTC) of the local minute, hour or day `when` falls in."""
    local = when.astimezone(tz)
    if granularity == "minute":
        local = local.replace(second=0, microsecond=0)
    elif granularity == "hour":
        local = local.replace(minute=0, second=0, microsecond=0)
    else:
        local = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return local.astimezone(UTC)


def bucket_of(when: datetime) -> datetime:
    """The start of the 15-minute UTC bucket `when` falls in."""
    when = when.astimezone(UTC)
    return when.replace(minute=when.minute - when.minute % 15, second=0, microsecond=0)


def _span(span: timedelta) -> str:
    return f"{span.days} days" if span.days > 1 else f"{int(span.total_seconds() // 3600)} hours"
