"""The feed's pure rules: the order of a feed, its cursors, and merging fan-out with fan-in.

A feed is ordered by `Key` = (score, entry id), newest first: the score is
when the entry was recorded, in whole microseconds since the epoch (exact in
a Redis score, a double), and the id breaks ties the way Redis orders equal
scores. Because the order only depends on the entry, a cursor is a key: the
next page is everything strictly below it, so entries that arrive between
pages land above the cursor and are neither skipped nor repeated.
"""

from __future__ import annotations

import uuid
from typing import NamedTuple

from google.protobuf.timestamp_pb2 import Timestamp
from zentry.events.v1 import sleep_events_pb2 as ev
from zentry.sleep.v1 import sleep_entry_pb2

from services.kit import paging
from services.kit.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 20


class Key(NamedTuple):
    """Where an entry sits in every feed; larger is newer."""

    score: int
    entry_id: str


def score(when: Timestamp) -> int:
    """Microseconds since the epoch: below 2**53 until the year 2255, so exact in a double."""
    return when.seconds * 1_000_000 + when.nanos // 1000


def encode_cursor(key: Key) -> str:
    return paging.encode_token({"s": key.score, "e": key.entry_id})


def decode_cursor(token: str) -> Key | None:
    """The key a page token stands for (None for the first page)."""
    cursor = paging.decode_token(token, {"s", "e"})
    if cursor is None:
        return None
    score_, entry_id = cursor["s"], cursor["e"]
    if not (isinstance(score_, int) and 0 <= score_ < 2**53 and _is_uuid(entry_id)):
        raise InvalidArgument.field(
            "page_token", "is not a token this feed returned; start again without it"
        )
    return Key(score_, entry_id)


def _is_uuid(text) -> bool:
    try:
        return isinstance(text, str) and str(uuid.UUID(text)) == text
    except ValueError:
        return False


def entry_from_state(state: ev.SleepEntryState) -> sleep_entry_pb2.SleepEntry:
    """The API's SleepEntry for an entry as events carry it (same fields, but no revision)."""
    entry = sleep_entry_pb2.SleepEntry(
        id=state.entry_id,
        user_id=state.user_id,
        time_zone=state.time_zone,
        sleep_date=state.sleep_date,
        quality=state.quality,
        note=state.note,
        tags=list(state.tags),
    )
    for name in ("start_time", "end_time", "duration", "create_time", "update_time"):
        if state.HasField(name):
            getattr(entry, name).CopyFrom(getattr(state, name))
    return entry
