"""What TrackEvents accepts, and who sent it: validation, bots and visitor ids. No I/O.

A batch is checked whole before anything is stored: every bad field is
listed (the message names the first), so an app fixes them in one go.

Privacy, as the careful web analytics products do it: the client's address
is never stored or published. An anonymous visitor is a hash of the day's
secret salt, the address, the user agent and the app's anonymous id; the
salt changes every UTC day and old salts are deleted, so nobody (us
included) can link a visitor across days or recover an address from a hash.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from zentry.analytics.v1 import product_analytics_service_pb2 as pb

from services.kit.errors import FieldViolation, InvalidArgument

EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
EVENT_NAME = re.compile(r"[a-z][a-z0-9_.]{0,63}")
PROPERTY_KEY = re.compile(r"[a-z0-9_]{1,40}")
MAX_PROPERTIES, MAX_PROPERTY_VALUE = 10, 100
MAX_TEXT = 512  # page, referrer
MAX_ID = 64  # anonymous id, user id, session id
MAX_FUTURE = timedelta(minutes=5)
PAGE_VIEW = "page_view"
MAX_LISTED_VIOLATIONS = 20

#: User agents of crawlers, monitors and headless browsers: their events are dropped.
BOTS = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|scrap|headless|phantomjs|lighthouse|pingdom|uptime|"
    r"monitor|preview|facebookexternalhit|curl/|wget/|python-requests|go-http-client|okhttp",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Limits:
    max_batch: int = 500
    max_age: timedelta = timedelta(hours=72)


def check_batch(events, now: datetime, limits: Limits, user_id: str | None) -> None:
    """InvalidArgument listing every bad field; `user_id` is the token's user, if any."""
    if not 1 <= len(events) <= limits.max_batch:
        raise InvalidArgument.field("events", f"send 1 to {limits.max_batch} events per batch")
    violations: list[FieldViolation] = []
    seen: set[str] = set()
    for i, event in enumerate(events):
        for field, problem in _problems(event, now, limits, user_id, seen):
            violations.append(FieldViolation(f"events[{i}].{field}", problem))
    if violations:
        first = violations[0]
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        raise InvalidArgument(
            f"{first.field}: {first.description}{more}; nothing in this batch was stored",
            violations=tuple(violations[:MAX_LISTED_VIOLATIONS]),
        )


def _problems(event: pb.ClientEvent, now: datetime, limits: Limits, user_id, seen):
    if not EVENT_ID.fullmatch(event.event_id):
        yield "event_id", "must be 1 to 64 of A-Z a-z 0-9 _ - (a UUID is best)"
    elif event.event_id in seen:
        yield "event_id", f"{event.event_id!r} appears twice in this batch"
    seen.add(event.event_id)
    if not EVENT_NAME.fullmatch(event.name):
        yield "name", "must be 1 to 64 of a-z 0-9 _ . starting with a letter, e.g. 'page_view'"
    if not event.HasField("event_time"):
        yield "event_time", "is required (RFC 3339, e.g. '2026-11-22T08:00:00Z')"
    else:
        when = event.event_time.ToDatetime(tzinfo=UTC)
        if when > now + MAX_FUTURE:
            yield "event_time", "is more than 5 minutes ahead of the server's clock"
        elif when < now - limits.max_age:
            hours = int(limits.max_age.total_seconds() // 3600)
            yield "event_time", f"is more than {hours} hours old; such events are not accepted"
    for field in ("anonymous_id", "user_id", "session_id"):
        if len(getattr(event, field)) > MAX_ID:
            yield field, f"must be at most {MAX_ID} characters"
    if event.user_id:
        if user_id is None:
            yield "user_id", "needs that user's token in 'Authorization: Bearer <token>'"
        elif event.user_id != user_id:
            yield "user_id", "is not the signed-in user; leave it empty and the token says who"
    for field in ("page", "referrer"):
        if len(getattr(event, field)) > MAX_TEXT:
            yield field, f"must be at most {MAX_TEXT} characters"
    if len(event.properties) > MAX_PROPERTIES:
        yield "properties", f"at most {MAX_PROPERTIES} properties per event"
    for key, value in sorted(event.properties.items()):
        if not PROPERTY_KEY.fullmatch(key):
            yield f"properties[{key!r}]", "keys must be 1 to 40 of a-z 0-9 _"
        elif len(value) > MAX_PROPERTY_VALUE:
            yield f"properties[{key!r}]", f"values must be at most {MAX_PROPERTY_VALUE} characters"


def is_bot(user_agent: str) -> bool:
    """Known crawlers and tools, and requests without any user agent."""
    return not user_agent.strip() or BOTS.search(user_agent) is not None


def visitor_id(
    salt: bytes, user_id: str | None, address: str, user_agent: str, anonymous_id: str
) -> str:
    """ "u:<user id>" when signed in; otherwise "a:" + a hash nobody can reverse or link."""
    if user_id:
        return f"u:{user_id}"
    material = "\0".join((address, user_agent, anonymous_id)).encode()
    return "a:" + hashlib.blake2b(material, key=salt, digest_size=16).hexdigest()
