"""Which version of an entry the feed keeps: a batch of sleep events folded over the store.

Pure: `fold` takes what the store holds of the batch's entries and gives the
rows to insert, the columns to change and, per event, what it still has to do
to Redis (services.feed.projector). The rules, event by event in order:

- created or updated: a new entry is inserted (an update of an entry not seen
  yet counts as its creation), `fanned_out` unless its author is a celebrity;
  a higher revision of a live entry replaces its body; anything else (an
  older or equal revision, a deleted entry) changes nothing, so redelivered
  and replayed events are harmless;
- deleted: a live entry becomes a tombstone (its body dropped) and Redis is
  told whether it may be in timelines; an entry never seen becomes a
  tombstone that waits for its creation (its creation may have reached Redis
  in a transaction that never committed: it counts as fanned out); a
  tombstone stays one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from zentry.events.v1 import sleep_events_pb2 as sev

from services.feed.domain import entry_from_state, score


@dataclass(frozen=True)
class Stored:
    """What the store holds of an entry, as far as the rules need it."""

    revision: int
    deleted: bool
    fanned_out: bool


@dataclass
class Folded:
    """What a batch changes: whole rows to insert, columns to set on stored rows, and the
    Redis effects to note per event id, in the batch's order."""

    inserts: dict[str, dict] = field(default_factory=dict)
    updates: dict[str, dict] = field(default_factory=dict)
    notes: list[tuple[str, list[dict]]] = field(default_factory=list)


def fold(events, stored: dict[str, Stored], celebrities: set[str]) -> Folded:
    """`events`: (envelope, SleepEntryCreated | SleepEntryUpdated | SleepEntryDeleted) in
    order; `stored`: the store's rows of their entries; `celebrities`: their authors who are."""
    known = dict(stored)
    out = Folded()
    for envelope, payload in events:
        state = payload.entry
        entry_id, author = state.entry_id, state.user_id
        was = known.get(entry_id)
        if isinstance(payload, sev.SleepEntryDeleted):
            if was is not None and was.deleted:
                continue
            timelines = True if was is None else was.fanned_out
            if was is None:
                known[entry_id] = Stored(state.revision, True, False)
                _set(out, entry_id, _row(state, None, fanned_out=False), inserted=True)
            else:
                known[entry_id] = replace(was, deleted=True)
                _set(out, entry_id, {"deleted": True, "body": b""})
            effect = {"do": "deleted", "entry": entry_id, "author": author}
            out.notes.append((envelope.event_id, [{**effect, "timelines": timelines}]))
            continue
        body = entry_from_state(state).SerializeToString()
        if was is None:
            fanned_out = author not in celebrities
            known[entry_id] = Stored(state.revision, False, fanned_out)
            _set(out, entry_id, _row(state, body, fanned_out=fanned_out), inserted=True)
            kind = "created"
        elif was.deleted or was.revision >= state.revision:
            continue
        else:
            known[entry_id] = replace(was, revision=state.revision)
            _set(out, entry_id, {"revision": state.revision, "body": body})
            kind = "updated"
        out.notes.append((envelope.event_id, [{"do": kind, "entry": entry_id, "author": author}]))
    return out


def _row(state: sev.SleepEntryState, body: bytes | None, *, fanned_out: bool) -> dict:
    """A whole row: a live entry, or (body None) a tombstone."""
    return {
        "entry_id": state.entry_id,
        "author_id": state.user_id,
        "score": score(state.record_time if state.HasField("record_time") else state.create_time),
        "revision": state.revision,
        "body": body or b"",
        "deleted": body is None,
        "fanned_out": fanned_out,
    }


def _set(out: Folded, entry_id: str, values: dict, *, inserted: bool = False) -> None:
    """Into the row this batch inserts, if it does; else into the stored row's changes."""
    if inserted:
        out.inserts[entry_id] = values
    elif entry_id in out.inserts:
        out.inserts[entry_id].update(values)
    else:
        out.updates.setdefault(entry_id, {}).update(values)
