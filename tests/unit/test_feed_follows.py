"""Who follows whom after a batch of follow events."""

from __future__ import annotations

from zentry.events.v1 import user_events_pb2 as uev

from services.feed.follows import fold
from services.kit.events import envelope

ADA, BOB, CY = "ada", "bob", "cy"


def follow(reader: str, author: str):
    payload = uev.FollowCreated(follower_id=reader, followee_id=author)
    return envelope(payload, reader, "test"), payload


def unfollow(reader: str, author: str):
    payload = uev.FollowDeleted(follower_id=reader, followee_id=author)
    return envelope(payload, reader, "test"), payload


def test_new_follows_are_added_and_noted_in_order():
    events = [follow(ADA, BOB), follow(ADA, CY)]
    folded = fold(events, set())
    assert folded.added == {(ADA, BOB), (ADA, CY)} and folded.removed == set()
    assert [n[0] for n in folded.notes] == [e.event_id for e, _p in events]
    assert folded.notes[0][1] == [{"do": "follow", "reader": ADA, "author": BOB}]


def test_what_changes_nothing_notes_nothing():
    folded = fold([follow(ADA, BOB), unfollow(ADA, CY)], {(ADA, BOB)})
    assert (folded.added, folded.removed, folded.notes) == (set(), set(), [])


def test_a_follow_undone_in_the_same_batch_writes_nothing_but_notes_both():
    folded = fold([follow(ADA, BOB), unfollow(ADA, BOB)], set())
    assert folded.added == folded.removed == set()
    assert [n[1][0]["do"] for n in folded.notes] == ["follow", "unfollow"]


def test_an_unfollow_then_a_follow_again_keeps_the_stored_pair():
    folded = fold([unfollow(ADA, BOB), follow(ADA, BOB), follow(ADA, BOB)], {(ADA, BOB)})
    assert folded.added == folded.removed == set()
    assert [n[1][0]["do"] for n in folded.notes] == ["unfollow", "follow"]
    gone = fold([unfollow(ADA, BOB)], {(ADA, BOB)})
    assert gone.removed == {(ADA, BOB)} and gone.added == set()
