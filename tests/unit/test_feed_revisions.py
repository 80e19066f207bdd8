"""Which version of an entry the feed keeps: the fold of a batch of sleep events."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp
from zentry.events.v1 import sleep_events_pb2 as sev

from services.feed.revisions import Stored, fold
from services.kit.events import envelope

AUTHOR = "8d5e4c1a-0000-4000-8000-000000000001"
ENTRY = "8d5e4c1a-0000-4000-8000-0000000000e1"


def state(revision: int, note: str = "") -> sev.SleepEntryState:
    return sev.SleepEntryState(
        entry_id=ENTRY,
        user_id=AUTHOR,
        revision=revision,
        note=note,
        create_time=Timestamp(seconds=1_700_000_000),
    )


def created(revision: int = 1, note: str = ""):
    payload = sev.SleepEntryCreated(entry=state(revision, note))
    return envelope(payload, AUTHOR, "test"), payload


def updated(revision: int, note: str = ""):
    payload = sev.SleepEntryUpdated(entry=state(revision, note))
    return envelope(payload, AUTHOR, "test"), payload


def deleted(revision: int):
    payload = sev.SleepEntryDeleted(entry=state(revision))
    return envelope(payload, AUTHOR, "test"), payload


def kinds(folded) -> list[str]:
    return [effects[0]["do"] for _event_id, effects in folded.notes]


def test_a_new_entry_is_one_row_fanned_out_unless_its_author_is_a_celebrity():
    events = [created()]
    plain = fold(events, {}, set())
    assert plain.inserts[ENTRY]["fanned_out"] and not plain.inserts[ENTRY]["deleted"]
    assert plain.inserts[ENTRY]["score"] == 1_700_000_000 * 1_000_000
    assert kinds(plain) == ["created"] and plain.notes[0][0] == events[0][0].event_id
    assert not fold(events, {}, {AUTHOR}).inserts[ENTRY]["fanned_out"]


def test_created_then_updated_then_deleted_in_one_batch_inserts_one_tombstone():
    folded = fold([created(1), updated(2, "late coffee"), deleted(3)], {}, set())
    row = folded.inserts[ENTRY]
    assert row["deleted"] and row["body"] == b"" and row["revision"] == 2
    assert folded.updates == {}
    assert kinds(folded) == ["created", "updated", "deleted"]
    assert folded.notes[2][1][0]["timelines"] is True


def test_an_older_or_equal_revision_and_a_redelivery_change_nothing():
    stored = {ENTRY: Stored(revision=3, deleted=False, fanned_out=True)}
    folded = fold([created(1), updated(2), updated(3)], stored, set())
    assert (folded.inserts, folded.updates, folded.notes) == ({}, {}, [])


def test_a_higher_revision_replaces_the_stored_body():
    stored = {ENTRY: Stored(revision=1, deleted=False, fanned_out=True)}
    folded = fold([updated(2, "woke once")], stored, set())
    assert folded.updates[ENTRY]["revision"] == 2 and b"woke once" in folded.updates[ENTRY]["body"]
    assert kinds(folded) == ["updated"]


def test_a_delete_says_whether_timelines_may_hold_the_entry():
    for fanned_out in (True, False):
        stored = {ENTRY: Stored(revision=1, deleted=False, fanned_out=fanned_out)}
        folded = fold([deleted(2)], stored, set())
        assert folded.updates[ENTRY] == {"deleted": True, "body": b""}
        assert folded.notes[0][1][0]["timelines"] is fanned_out


def test_a_delete_before_the_creation_leaves_a_tombstone_that_wins():
    folded = fold([deleted(2), created(1), updated(5)], {}, set())
    assert folded.inserts[ENTRY]["deleted"] and kinds(folded) == ["deleted"]
    tombstone = {ENTRY: Stored(revision=2, deleted=True, fanned_out=False)}
    again = fold([deleted(2), created(1)], tombstone, set())
    assert (again.inserts, again.updates, again.notes) == ({}, {}, [])
