"""Time zones as users give them: IANA names, checked against the system's zone database."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.kit.errors import InvalidArgument


@lru_cache(maxsize=1024)
def _load(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone(name: str, field: str = "time_zone") -> ZoneInfo:
    """The zone called `name`; InvalidArgument naming `field` if there is none."""
    try:
        if not name or name != name.strip():
            raise ValueError(name)
        return _load(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument.field(
            field, f"{name!r} is not an IANA time zone name such as 'Europe/Paris'"
        ) from None


def zone_or_utc(name: str) -> ZoneInfo:
    """For names already stored (a profile, an event): UTC rather than fail on a bad one."""
    try:
        return zone(name)
    except InvalidArgument:
        return _load("UTC")
