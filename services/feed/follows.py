"""Who follows whom after a batch of follow events: a pure fold over the store's follows.

An event that changes nothing (following whom one follows already, unfollowing
whom one does not) notes nothing; one that does notes its Redis effect
(services.feed.projector), in the batch's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zentry.events.v1 import user_events_pb2 as uev

Pair = tuple[str, str]  # (follower, followee)


@dataclass
class FoldedFollows:
    """The pairs to insert and to delete, and the Redis effects to note per event id."""

    added: set[Pair] = field(default_factory=set)
    removed: set[Pair] = field(default_factory=set)
    notes: list[tuple[str, list[dict]]] = field(default_factory=list)


def fold(events, stored: set[Pair]) -> FoldedFollows:
    """`events`: (envelope, FollowCreated | FollowDeleted) in order; `stored`: which of
    their pairs the store holds."""
    now = set(stored)
    notes = []
    for envelope, payload in events:
        pair = (payload.follower_id, payload.followee_id)
        follow = isinstance(payload, uev.FollowCreated)
        if follow == (pair in now):
            continue
        if follow:
            now.add(pair)
        else:
            now.discard(pair)
        effect = {"do": "follow" if follow else "unfollow", "reader": pair[0], "author": pair[1]}
        notes.append((envelope.event_id, [effect]))
    return FoldedFollows(now - stored, stored - now, notes)
