"""Sessions from 30 minutes of inactivity, per visitor: pure, no I/O.

An event joins the visitor's session it falls within 30 minutes of (before
its start or after its end) and stretches it; otherwise it starts a new one.
Events usually arrive in order, but an app that was offline sends a late
batch: those join or start sessions in the past just the same. (A late event
that would bridge two sessions joins the first; they are not merged.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

GAP = timedelta(minutes=30)


@dataclass
class Session:
    session_id: str
    visitor_id: str
    started_at: datetime
    ended_at: datetime
    events: int = 0
    page_views: int = 0
    changed: bool = field(default=False, compare=False)


def assign(sessions: list[Session], visitor_id: str, when: datetime, page_view: bool) -> Session:
    """The session (of `sessions`, or a new one appended to it) that the event belongs to."""
    for session in sessions:
        if session.started_at - GAP <= when <= session.ended_at + GAP:
            session.started_at = min(session.started_at, when)
            session.ended_at = max(session.ended_at, when)
            break
    else:
        session = Session(str(uuid.uuid4()), visitor_id, when, when)
        sessions.append(session)
    session.events += 1
    session.page_views += int(page_view)
    session.changed = True
    return session
