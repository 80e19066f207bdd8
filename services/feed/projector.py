"""Applies user and sleep events to the feed's read models and timelines.

Two consumer groups, one per topic, each through the kit's runner (one
transaction per event with its processed-event record; redelivery and replay
change nothing twice). Redis writes happen inside that transaction, under the
store's advisory locks, and are idempotent (adding a member twice, removing
one that is gone), so a transaction that fails after them is simply applied
again. An unreachable Redis is an outage: the runner retries until it is back,
rather than let timelines miss what happened meanwhile.

- An entry by an ordinary author is pushed into its active followers'
  timelines (fan-out on write); a celebrity's is not (readers fan it in).
- Following an author backfills their recent entries into the reader's
  timeline, or adds them to the reader's celebrities; unfollowing removes both.
- Becoming a celebrity adds the author to their followers' celebrity sets; what
  is already in timelines stays (a feed read shows an entry once). Ceasing to
  be one removes them and pushes their recent entries into the timelines.
- An update replaces the cached entry; a delete removes it from everywhere it
  was pushed, and leaves a tombstone so a late event cannot bring it back.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev
from zentry.feed.v1 import feed_service_pb2

from services.feed import store
from services.feed.activity import Activity
from services.feed.domain import Key, entry_from_state, score
from services.feed.store import EntryChange
from services.feed.timelines import Timelines, celebs_key, newest, posts_key, timeline_key
from services.kit.consumer import Subscription
from services.kit.events import SLEEP_EVENTS, USER_EVENTS

_log = logging.getLogger(__name__)

GRAPH_GROUP = "feed.graph"
ENTRIES_GROUP = "feed.entries"
LOGGED_FANOUT = 1000  # fan-outs to at least this many timelines are logged with their time


class Projector:
    def __init__(self, timelines: Timelines, activity: Activity):
        self._timelines = timelines
        self._activity = activity
        self.last_fanout = 0  # timelines the last fan-out wrote to (for tests and benchmarks)

    def subscriptions(
        self,
        user_topic: str = USER_EVENTS,
        sleep_topic: str = SLEEP_EVENTS,
        groups: tuple[str, str] = (GRAPH_GROUP, ENTRIES_GROUP),
    ) -> list[Subscription]:
        """The two consumer groups (tests give their own topics and group names)."""
        return [
            Subscription(
                groups[0],
                (user_topic,),
                {
                    uev.UserRegistered: self.on_profile,
                    uev.UserProfileUpdated: self.on_profile,
                    uev.CelebrityStatusChanged: self.on_celebrity,
                    uev.FollowCreated: self.on_follow,
                    uev.FollowDeleted: self.on_unfollow,
                },
            ),
            Subscription(
                groups[1],
                (sleep_topic,),
                {
                    sev.SleepEntryCreated: self.on_entry,
                    sev.SleepEntryUpdated: self.on_entry,
                    sev.SleepEntryDeleted: self.on_delete,
                },
            ),
        ]

    async def _followers(self, session, author_id: str) -> list[str]:
        return await store.active_followers(
            session, author_id, self._activity.active_since(datetime.now(UTC))
        )

    # -- user events ---------------------------------------------------------------

    async def on_profile(self, _envelope, payload, session) -> None:
        profile = payload.profile
        await store.lock_author(session, profile.user_id)  # before its row, as every writer
        await store.save_author(session, profile.user_id, profile.username, profile.display_name)
        author = feed_service_pb2.Author(
            user_id=profile.user_id,
            username=profile.username,
            display_name=profile.display_name,
        )
        await self._timelines.cache_author(profile.user_id, author.SerializeToString())
        await self._set_celebrity(session, profile.user_id, profile.celebrity)

    async def on_celebrity(self, _envelope, payload, session) -> None:
        await self._set_celebrity(session, payload.user_id, payload.celebrity)

    async def _set_celebrity(self, session, author_id: str, celebrity: bool) -> None:
        await store.lock_author(session, author_id)
        if not await store.set_celebrity(session, author_id, celebrity):
            return
        followers = await self._followers(session, author_id)
        if celebrity:
            await self._timelines.add_celebrity(followers, author_id)
            return
        await self._timelines.remove([celebs_key(f) for f in followers], [author_id], sets=True)
        # All their recent entries, not only those never fanned out: a timeline rebuilt
        # while they were a celebrity left out the ones pushed before.
        length = self._timelines.length
        recent = await store.recent_entries(session, author_id, length + 1)
        await self._timelines.push([timeline_key(f) for f in followers], *newest(recent, length))
        await store.mark_fanned_out(session, author_id)

    async def on_follow(self, _envelope, payload, session) -> None:
        reader, author = payload.follower_id, payload.followee_id
        await store.lock_reader(session, reader)
        await store.lock_author(session, author, shared=True)
        if not await store.add_follow(session, reader, author):
            return
        if await store.is_celebrity(session, author):
            await self._timelines.add_celebrity([reader], author)
        else:
            length = self._timelines.length
            recent = await store.recent_entries(session, author, length + 1)
            await self._timelines.push([timeline_key(reader)], *newest(recent, length))

    async def on_unfollow(self, _envelope, payload, session) -> None:
        reader, author = payload.follower_id, payload.followee_id
        await store.lock_reader(session, reader)
        await store.lock_author(session, author, shared=True)
        if not await store.remove_follow(session, reader, author):
            return
        # Only the author's newest `length` can be in a timeline of that length.
        recent = await store.recent_entries(session, author, self._timelines.length)
        await self._timelines.remove([timeline_key(reader)], [k.entry_id for k in recent])
        await self._timelines.remove([celebs_key(reader)], [author], sets=True)

    # -- sleep events --------------------------------------------------------------

    async def on_entry(self, _envelope, payload, session) -> None:
        """Created, or updated (an update of an entry not seen yet counts as its creation)."""
        state = payload.entry
        author, key = state.user_id, Key(score(state.create_time), state.entry_id)
        body = entry_from_state(state).SerializeToString()
        await store.lock_author(session, author)
        celebrity = await store.is_celebrity(session, author)
        change = await store.save_entry(
            session, state.entry_id, author, key, state.revision, body, fanned_out=not celebrity
        )
        if change == EntryChange.STALE:
            return
        await self._timelines.cache_entry(state.entry_id, author, body)
        if change == EntryChange.UPDATED:
            return
        await self._timelines.push([posts_key(author)], [key])
        if not celebrity:
            started = time.monotonic()
            followers = await self._followers(session, author)
            self.last_fanout = await self._timelines.push(
                [timeline_key(f) for f in followers], [key]
            )
            if len(followers) >= LOGGED_FANOUT:
                _log.info(
                    "fanned out %s to %d of %d active followers in %.0f ms",
                    state.entry_id,
                    self.last_fanout,
                    len(followers),
                    (time.monotonic() - started) * 1000,
                    extra={"author": author},
                )

    async def on_delete(self, _envelope, payload, session) -> None:
        state = payload.entry
        author, key = state.user_id, Key(score(state.create_time), state.entry_id)
        await store.lock_author(session, author)
        fanned_out = await store.delete_entry(session, state.entry_id, author, key, state.revision)
        if fanned_out is None:
            return
        await self._timelines.forget_entry(state.entry_id)
        await self._timelines.remove([posts_key(author)], [state.entry_id])
        if fanned_out:
            followers = await self._followers(session, author)
            await self._timelines.remove([timeline_key(f) for f in followers], [state.entry_id])
