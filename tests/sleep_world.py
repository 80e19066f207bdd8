"""The sleep service's directory and nights for one integration test (tests/integration)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from zentry.events.v1 import user_events_pb2 as uev

from services.kit.auth import Caller
from services.kit.db import Database
from services.kit.events import envelope
from services.sleep.projector import Projector

NOW = datetime.now(UTC).replace(microsecond=0)
NIGHT_START, NIGHT_END = NOW - timedelta(days=2, hours=9), NOW - timedelta(days=2, hours=1)


async def known_user(db: Database, time_zone: str = "Europe/Paris") -> Caller:
    """A user the directory has learnt of through a UserRegistered event."""
    caller = Caller(user_id=str(uuid.uuid4()), username=f"u{uuid.uuid4().hex[:10]}")
    await apply_profile_event(db, uev.UserRegistered, caller, time_zone)
    return caller


async def apply_profile_event(
    db: Database, event_class, caller: Caller, time_zone: str, nights_visible_to: str = ""
) -> None:
    payload = event_class(
        profile=uev.UserProfile(
            user_id=caller.user_id,
            username=caller.username,
            time_zone=time_zone,
            nights_visible_to=nights_visible_to,
        )
    )
    await apply(db, payload, caller.user_id)


async def apply(db: Database, payload, key: str) -> None:
    """`payload` as the directory's consumers apply it."""
    for subscription in Projector().subscriptions():
        handler = subscription.handlers.get(type(payload))
        if handler is not None:
            async with db.transaction() as session:
                await handler(envelope(payload, key, "user"), payload, session)


def night(**fields) -> dict:
    return {
        "start": NIGHT_START,
        "end": NIGHT_END,
        "time_zone": "",
        "quality": 0,
        "note": "",
        "tags": [],
        "request_id": "",
        **fields,
    }
