"""Keeps the sleep service's copies of the users (services.sleep.directory reads them).

Two consumer groups on zentry.user.events: profile events replace a user's row
(each carries the whole profile after the change, and one user's events arrive
in order), UserDeleted takes the user's nights and everything kept of them, for
good (services.kit.erasure); follow events add or remove a follow.
"""

from __future__ import annotations

from zentry.events.v1 import user_events_pb2 as ev

from services.kit import erasure, visibility
from services.kit.consumer import Subscription
from services.kit.events import USER_EVENTS
from services.sleep import store

PROFILES_GROUP = "sleep.user-directory"
#: A group of its own, so that a service that had the profiles before it read the follows
#: from the start of the log.
FOLLOWS_GROUP = "sleep.follows"


class Projector:
    def subscriptions(self) -> list[Subscription]:
        return [
            Subscription(
                group=PROFILES_GROUP,
                topics=(USER_EVENTS,),
                handlers={
                    ev.UserRegistered: self.on_profile,
                    ev.UserProfileUpdated: self.on_profile,
                    ev.UserDeleted: self.on_deleted,
                },
            ),
            Subscription(
                group=FOLLOWS_GROUP,
                topics=(USER_EVENTS,),
                handlers={ev.FollowCreated: self.on_follow, ev.FollowDeleted: self.on_unfollow},
            ),
        ]

    async def on_profile(self, _envelope, payload, session) -> None:
        p = payload.profile
        setting = visibility.audience(p.nights_visible_to)
        await store.save_user(session, p.user_id, p.username, p.time_zone, setting)

    async def on_deleted(self, _envelope, payload, session) -> None:
        await store.forget_user(session, payload.user_id)
        await erasure.record(session, payload.user_id)

    async def on_follow(self, _envelope, payload, session) -> None:
        """One follower's events arrive in order (they are keyed by the follower)."""
        await store.set_follow(session, payload.follower_id, payload.followee_id, True)

    async def on_unfollow(self, _envelope, payload, session) -> None:
        await store.set_follow(session, payload.follower_id, payload.followee_id, False)
