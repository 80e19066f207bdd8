"""What the user service tells the rest of the mesh: its events on zentry.user.events."""

from __future__ import annotations

from zentry.events.v1 import user_events_pb2

from services.kit.events import USER_EVENTS
from tests.support import TopicTail, unpack


def test_account_profile_and_follow_events(api, new_account, settings):
    tail = TopicTail(settings.kafka.bootstrap_servers, USER_EVENTS)
    author = new_account(timeZone="America/St_Johns")
    readers = [new_account() for _ in range(3)]
    api.patch("/v1/users/me", headers=author.auth, json={"displayName": "The Author"})
    api.patch("/v1/users/me", headers=author.auth, json={"displayName": "The Author"})  # no change
    for reader in readers:
        api.post(f"/v1/users/{author.username}:follow", headers=reader.auth)
    api.post(f"/v1/users/{author.username}:follow", headers=readers[0].auth)  # already followed
    api.post(f"/v1/users/{author.username}:unfollow", headers=readers[2].auth)
    api.post(f"/v1/users/{author.username}:unfollow", headers=readers[1].auth)

    ours = {author.id, *(r.id for r in readers)}
    events = tail.read(lambda seen: sum(e.subject_user_id in ours for e in seen) >= 12)
    mine = [e for e in events if e.subject_user_id in ours]
    kinds = [e.event_type.rsplit(".", 1)[1] for e in mine]
    assert kinds.count("UserRegistered") == 4
    assert kinds.count("UserProfileUpdated") == 1, "an update that changes nothing is no event"
    assert kinds.count("FollowCreated") == 3 and kinds.count("FollowDeleted") == 2
    assert kinds.count("CelebrityStatusChanged") == 2  # promoted at 3, demoted below 2
    assert len({e.event_id for e in mine}) == len(mine)

    registered = next(
        unpack(e, user_events_pb2.UserRegistered)
        for e in mine
        if e.event_type.endswith("UserRegistered") and e.subject_user_id == author.id
    )
    assert registered.profile.time_zone == "America/St_Johns"
    follows = [
        unpack(e, user_events_pb2.FollowCreated)
        for e in mine
        if e.event_type.endswith("FollowCreated")
    ]
    # Keyed by follower: different partitions, so no order across them.
    assert sorted(f.followee_follower_count for f in follows) == [1, 2, 3]
    assert all(f.followee_id == author.id for f in follows)
    celebrity = [
        unpack(e, user_events_pb2.CelebrityStatusChanged)
        for e in mine
        if e.event_type.endswith("CelebrityStatusChanged")
    ]
    assert [(c.celebrity, c.follower_count) for c in celebrity] == [(True, 3), (False, 1)]
    for e in mine:
        if e.event_type.endswith(("FollowCreated", "FollowDeleted")):
            payload = unpack(e, getattr(user_events_pb2, e.event_type.rsplit(".", 1)[1]))
            assert e.subject_user_id == payload.follower_id, "keyed by the follower"
