"""The sleep service's rules, pure: what makes a night valid and which day it counts on.

Each `check_*` returns the normalised value or raises InvalidArgument naming
the field. Times are instants (aware datetimes); durations are real elapsed
time, so a night across a daylight-saving change is as long as it really was.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from services.kit import dates, masks, zones
from services.kit.errors import InvalidArgument

MIN_DURATION = timedelta(minutes=10)
MAX_DURATION = timedelta(hours=24)
#: How far in the future an end time may be: clocks of phones and servers disagree a little.
CLOCK_SKEW = timedelta(minutes=5)
QUALITY_MIN, QUALITY_MAX = 1, 5
NOT_RATED = 0
MAX_NOTE = 500
MAX_TAGS, MAX_TAG = 10, 32
TAG = re.compile(rf"[^\W_][\w-]{{0,{MAX_TAG - 1}}}")
REQUEST_ID = re.compile(r"[\x21-\x7e]{1,64}")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: `me` in a path means the caller.
ME = "me"


class State(StrEnum):
    """Where an entry stands; only RECORDED nights count anywhere."""

    RECORDED = "recorded"
    #: Started live, not yet finished.
    OPEN = "open"
    #: Left open longer than a night lasts (MAX_DURATION): closed without an end.
    ABANDONED = "abandoned"


#: Entry fields an owner may change, by proto field name.
UPDATABLE = ("start_time", "end_time", "time_zone", "quality", "note", "tags")
OUTPUT_ONLY = ("id", "user_id", "duration", "sleep_date", "create_time", "update_time")


@dataclass(frozen=True)
class Night:
    """The facts of one night, all checked: what an entry records."""

    start: datetime
    end: datetime
    time_zone: str
    quality: int
    note: str
    tags: tuple[str, ...]

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def sleep_date(self) -> date:
        return sleep_date(self.end, self.time_zone)


def sleep_date(end: datetime, time_zone: str) -> date:
    """The local calendar date, in `time_zone`, on which a night ending at `end` ended."""
    return end.astimezone(zones.zone(time_zone)).date()


def night(
    *,
    start: datetime | None,
    end: datetime | None,
    time_zone: str,
    quality: int,
    note: str,
    tags: list[str] | tuple[str, ...],
    now: datetime,
) -> Night:
    """A valid Night from what a caller sent; InvalidArgument naming the first bad field."""
    start, end = check_times(start, end, now)
    zones.zone(time_zone)
    return Night(start, end, time_zone, check_quality(quality), check_note(note), check_tags(tags))


def check_times(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    if start is None:
        raise InvalidArgument.field("start_time", "is required, e.g. 2026-11-20T23:10:00Z")
    if end is None:
        raise InvalidArgument.field("end_time", "is required, e.g. 2026-11-21T07:05:00Z")
    if end <= start:
        raise InvalidArgument.field("end_time", "must be after start_time")
    length = end - start
    if length < MIN_DURATION:
        raise InvalidArgument.field(
            "end_time",
            f"the night lasts {span(length)}; record nights of at least {span(MIN_DURATION)}",
        )
    if length > MAX_DURATION:
        raise InvalidArgument.field(
            "end_time",
            f"the night lasts {span(length)}; a night lasts at most {span(MAX_DURATION)}",
        )
    if end > now + CLOCK_SKEW:
        raise InvalidArgument.field(
            "end_time", "is in the future; record a night once it has ended"
        )
    if end < dates.EPOCH:
        raise InvalidArgument.field(
            "end_time",
            f"must be at or after {dates.EPOCH:%Y-%m-%dT%H:%M:%SZ}; Zentry keeps "
            "nights from the year 2000 on",
        )
    return start, end


def check_planned_end(planned: datetime | None, start: datetime) -> datetime | None:
    """When the owner of a night started at `start` means to wake: after it, within a night."""
    if planned is None:
        return None
    if planned <= start:
        raise InvalidArgument.field("planned_end_time", "must be after the night's start (now)")
    if planned - start > MAX_DURATION:
        raise InvalidArgument.field(
            "planned_end_time",
            f"must be at most {span(MAX_DURATION)} after the night's start; a night lasts "
            "no longer",
        )
    return planned


def overdue(start: datetime, now: datetime) -> bool:
    """Whether a night started live at `start` has been open longer than a night can last."""
    return now - start > MAX_DURATION


def check_quality(quality: int) -> int:
    if quality != NOT_RATED and not QUALITY_MIN <= quality <= QUALITY_MAX:
        raise InvalidArgument.field(
            "quality", f"must be {QUALITY_MIN} to {QUALITY_MAX}, or 0 for not rated; got {quality}"
        )
    return quality


def check_note(note: str) -> str:
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise InvalidArgument.field(
            "note", f"must be at most {MAX_NOTE} characters; it has {len(note)}"
        )
    if any(unicodedata.category(ch) == "Cc" for ch in note.replace("\n", "").replace("\t", "")):
        raise InvalidArgument.field("note", "must not contain control characters")
    return note


def check_tags(tags: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Lower-cased, trimmed and without repeats, in the order given."""
    normalised = list(dict.fromkeys(tag.strip().casefold() for tag in tags))
    for tag in normalised:
        if not TAG.fullmatch(tag):
            raise InvalidArgument.field(
                "tags",
                f"{tag!r} is not a tag: use 1 to {MAX_TAG} letters, digits, '-' or '_', "
                "starting with a letter or digit",
            )
    if len(normalised) > MAX_TAGS:
        raise InvalidArgument.field("tags", f"at most {MAX_TAGS} tags; got {len(normalised)}")
    return tuple(normalised)


def check_request_id(request_id: str) -> str:
    """Empty (no idempotency asked) or 1 to 64 printable ASCII characters, e.g. a UUID."""
    if request_id and not REQUEST_ID.fullmatch(request_id):
        raise InvalidArgument.field(
            "request_id", "must be 1 to 64 printable ASCII characters without spaces, e.g. a UUID"
        )
    return request_id


def start_fingerprint(time_zone: str, planned_end: datetime | None) -> str:
    """What a start asked for (services.sleep.actions), like request_fingerprint."""
    asked = ["start", time_zone, planned_end.isoformat() if planned_end else ""]
    return hashlib.sha256(json.dumps(asked).encode()).hexdigest()


def request_fingerprint(
    start: datetime, end: datetime, time_zone: str, quality: int, note: str, tags: tuple[str, ...]
) -> str:
    """What a create asked for, so a retry can be told from a different night under the same id."""
    asked = [start.isoformat(), end.isoformat(), time_zone, quality, note, list(tags)]
    return hashlib.sha256(json.dumps(asked).encode()).hexdigest()


def parse_date(text: str, field: str) -> date | None:
    """A YYYY-MM-DD date, or None when empty."""
    if not text:
        return None
    try:
        if not DATE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument.field(
            field, f"{text!r} is not a date in the form YYYY-MM-DD, e.g. 2026-11-21"
        ) from None


def check_date_range(first: date | None, last: date | None) -> None:
    if first and last and last < first:
        raise InvalidArgument.field("end_date", "must not be before start_date")


def check_update_mask(paths: list[str], present: set[str]) -> list[str]:
    """The fields to change (services.kit.masks)."""
    return masks.fields_to_change(
        paths, present, UPDATABLE, OUTPUT_ONLY, "; it follows from the other fields"
    )


def span(length: timedelta) -> str:
    minutes = int(length.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"
