"""Applies user and sleep events to the feed's read models, then to its Redis timelines.

Two consumer groups, one per topic, each through the kit's runner, a fetch a
transaction. A handler changes PostgreSQL only (user events once each, by
the kit's processed-event records; sleep events by revision, a batch at a
time: services.feed.revisions), and notes in that transaction what each
event still has to do to Redis (`redis_effects`). Once the batch has
committed, `after_commit` does it and deletes the notes; a crash in between
redelivers the events, whose notes are still there. So Redis never shows what
PostgreSQL did not commit (a rolled back or parked event wrote nothing
there) and never misses what it did.

An effect reads what it writes from PostgreSQL, under the store's advisory
locks, as rebuilds do: whichever runs first, the other finds its work done.
Every effect is idempotent (adding a member twice, removing one that is
gone), and an unreachable Redis is an outage the runner waits out.

- An entry by an ordinary author is pushed into its active followers'
  timelines (fan-out on write); a celebrity's is not (readers fan it in).
- Following an author backfills their recent entries into the reader's
  timeline, or adds them to the reader's celebrities; unfollowing removes both.
- Becoming a celebrity adds the author to their followers' celebrity sets; what
  is already in timelines stays (a feed read shows an entry once). Ceasing to
  be one removes them and pushes their recent entries into the timelines.
- An update replaces the cached entry; a delete removes it from everywhere it
  was pushed, and leaves a tombstone so a late event cannot bring it back.
- A deleted account (UserDeleted) goes from every table, timeline, celebrity
  set and cache, and no later or replayed event of theirs is applied
  (services.kit.erasure).
- An author who shares their nights with nobody (services.kit.visibility:
  `onlyMe`) is hidden: nothing of theirs is pushed, backfilled or fanned in,
  and hiding takes their recent entries out of their followers' timelines and
  them out of their followers' celebrity sets; showing again puts both back.
  (Followers are the only readers fan-out writes to, and `everyone` and
  `followers` both let a follower see: the feed needs to know only `onlyMe`.)
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev
from zentry.feed.v1 import feed_service_pb2

from services.feed import follows, revisions, store
from services.feed.activity import Activity
from services.feed.timelines import (
    NO_FLOOR,
    Timelines,
    celebs_key,
    newest,
    posts_key,
    timeline_key,
)
from services.kit import erasure, redis_client, visibility
from services.kit.consumer import BatchSubscription
from services.kit.db import Database
from services.kit.events import SLEEP_EVENTS, USER_EVENTS

_log = logging.getLogger(__name__)

GRAPH_GROUP = "feed.graph"
ENTRIES_GROUP = "feed.entries"
#: The key services.kit.redis_client.durable writes to learn the replicas have the rest.
DURABLE_PROBE = "feed:durable"
_FOLLOWS = (uev.FollowCreated, uev.FollowDeleted)  # folded together; they lock nobody
_READ_AUTHOR = frozenset({"follow", "unfollow"})  # effects that only read an author's follows
LOGGED_FANOUT = 1000  # fan-outs to at least this many timelines are logged with their time


class Projector:
    def __init__(self, db: Database, timelines: Timelines, activity: Activity):
        self._db = db
        self._timelines = timelines
        self._activity = activity
        self.last_fanout = 0  # timelines the last fan-out wrote to (for tests and benchmarks)
        self._on_user = {
            uev.UserRegistered: self.on_profile,
            uev.UserProfileUpdated: self.on_profile,
            uev.CelebrityStatusChanged: self.on_celebrity,
            uev.FollowCreated: self.on_follow,
            uev.FollowDeleted: self.on_follow,
            uev.UserDeleted: self.on_deleted,
        }
        self._effects = {
            "author": self._cache_author,
            "celebrity": self._sync_celebrity,
            "visibility": self._sync_visibility,
            "forget": self._forget,
            "unfollow": self._purge,
            "updated": self._recache,
            "deleted": self._remove,
        }

    def subscriptions(
        self,
        user_topic: str = USER_EVENTS,
        sleep_topic: str = SLEEP_EVENTS,
        groups: tuple[str, str] = (GRAPH_GROUP, ENTRIES_GROUP),
    ) -> list[BatchSubscription]:
        """The two consumer groups (tests give their own topics and group names)."""
        return [
            BatchSubscription(
                groups[0],
                (user_topic,),
                tuple(self._on_user),
                self.apply_user_events,
                after_commit=self.after_commit,
                once=True,
            ),
            BatchSubscription(
                groups[1],
                (sleep_topic,),
                (sev.SleepEntryCreated, sev.SleepEntryUpdated, sev.SleepEntryDeleted),
                self.apply_entries,
                after_commit=self.after_commit,
            ),
        ]

    async def apply_user_events(self, events, session) -> None:
        """A batch of user events, each seen for the first time (the kit's ledger): follows
        folded into one write (services.feed.follows), the rest one by one, under every
        author's lock taken at once. (A deletion ends its batch: it comes last.)"""
        follows = [(e, p) for e, p in events if isinstance(p, _FOLLOWS)]
        others = [(e, p) for e, p in events if not isinstance(p, _FOLLOWS)]
        authors = {user for _e, p in others for user in erasure.users_named(p)}
        await store.lock_authors(session, authors, shared=False)
        if follows:
            await self._apply_follows(follows, session)
        for envelope, payload in others:
            await self._on_user[type(payload)](envelope, payload, session)

    async def _apply_follows(self, events, session) -> None:
        pairs = {(p.follower_id, p.followee_id) for _e, p in events}
        folded = follows.fold(events, await store.follows_among(session, pairs))
        await store.add_follows(session, folded.added)
        await store.remove_follows(session, folded.removed)
        await store.notify_follows(session, {r for r, _a in [*folded.added, *folded.removed]})
        await store.note_all_effects(session, folded.notes)

    # -- user events: PostgreSQL, and a note of what Redis needs --------------------

    async def on_profile(self, envelope, payload, session) -> None:
        profile = payload.profile
        await store.lock_author(session, profile.user_id)  # before its row, as every writer
        await store.save_author(session, profile.user_id, profile.username, profile.display_name)
        effects = [{"do": "author", "user": profile.user_id}]
        if await self._set_celebrity(session, profile.user_id, profile.celebrity):
            effects.append({"do": "celebrity", "author": profile.user_id})
        hidden = visibility.audience(profile.nights_visible_to) == visibility.ONLY_ME
        if await store.set_hidden(session, profile.user_id, hidden):
            effects.append({"do": "visibility", "author": profile.user_id})
        await store.note_effects(session, envelope.event_id, effects)

    async def on_celebrity(self, envelope, payload, session) -> None:
        await store.lock_author(session, payload.user_id)
        if await self._set_celebrity(session, payload.user_id, payload.celebrity):
            effect = {"do": "celebrity", "author": payload.user_id}
            await store.note_effects(session, envelope.event_id, [effect])

    async def _set_celebrity(self, session, author_id: str, celebrity: bool) -> bool:
        """The flag, under the author's lock (the caller's): an entry is saved as fanned out
        or not either before the change committed or after (and the change's effect sees it)."""
        if not await store.set_celebrity(session, author_id, celebrity):
            return False
        if not celebrity:
            await store.mark_fanned_out(session, author_id)
        return True

    async def on_follow(self, envelope, payload, session) -> None:
        """A FollowCreated or FollowDeleted, as apply_user_events applies it."""
        await self._apply_follows([(envelope, payload)], session)

    async def on_deleted(self, envelope, payload, session) -> None:
        """A deleted account: every row now, their keys and entries out of Redis next; the
        note carries what the rows said, since they are gone when it runs."""
        user = payload.user_id
        await store.lock_author(session, user)
        entry_ids, followers = await store.forget_user(session, user)
        await erasure.record(session, user)
        effect = {"do": "forget", "user": user, "entries": entry_ids, "followers": followers}
        await store.note_effects(session, envelope.event_id, [effect])

    # -- sleep events ----------------------------------------------------------------

    async def apply_entries(self, events, session) -> None:
        """A batch of sleep events: each entry at its highest revision or its tombstone
        (services.feed.revisions), and per event what Redis still needs, noted."""
        states = [payload.entry for _envelope, payload in events]
        await store.lock_authors(session, {s.user_id for s in states}, shared=False)
        stored = await store.stored_entries(session, {s.entry_id for s in states})
        celebrities = await store.celebrities_among(session, {s.user_id for s in states})
        folded = revisions.fold(events, stored, celebrities)
        await store.write_entries(session, folded)
        await store.note_all_effects(session, folded.notes)

    async def on_entry(self, envelope, payload, session) -> None:
        """One sleep event (created, updated or deleted), as apply_entries applies it."""
        await self.apply_entries([(envelope, payload)], session)

    # -- after the commit: Redis ------------------------------------------------------

    async def after_commit(self, envelopes) -> None:
        """Do to Redis what the committed events noted, then forget the notes, in one
        transaction under every lock the effects take; idempotent.

        Each effect makes Redis agree with what PostgreSQL holds now, so their order
        does not matter: follows and new entries go in one query each, the rest one by
        one.
        """
        ids = [envelope.event_id for envelope in envelopes]
        writing_to = redis_client.primary(self._timelines.redis)
        async with self._db.transaction() as session:
            noted = await store.noted_effects(session, ids)
            if not noted:
                return
            effects = [effect for event_id in ids for effect in noted.get(event_id, ())]
            await self._lock(session, effects)
            by_kind: dict[str, list[dict]] = {}
            for effect in effects:
                by_kind.setdefault(effect["do"], []).append(effect)
            await self._backfill_all(session, by_kind.pop("follow", []))
            await self._fan_out_all(session, by_kind.pop("created", []))
            for effect in effects:
                if effect["do"] in by_kind:
                    await self._effects[effect["do"]](session, effect)
            # A failover must not lose what the forgotten notes would have redone.
            await redis_client.durable(self._timelines.redis, DURABLE_PROBE, writing_to)
            await store.forget_effects(session, list(noted))

    async def _lock(self, session, effects: list[dict]) -> None:
        """Every lock the effects take, at once: readers, then authors (shared where the
        effects only read who follows them)."""
        readers = {e["reader"] for e in effects if "reader" in e}
        shared: dict[str, bool] = {}
        for effect in effects:
            author = effect.get("author")
            if author is not None:
                shared[author] = shared.get(author, True) and effect["do"] in _READ_AUTHOR
        await store.lock_readers_and_authors(session, readers, shared)

    async def _followers(self, session, author_id: str) -> list[str]:
        return await store.active_followers(
            session, author_id, self._activity.active_since(datetime.now(UTC))
        )

    async def _cache_author(self, session, effect) -> None:
        rows = await store.find_authors(session, [effect["user"]])
        row = rows.get(effect["user"])
        if row is not None:
            author = feed_service_pb2.Author(
                user_id=row.user_id, username=row.username, display_name=row.display_name
            )
            await self._timelines.cache_author(row.user_id, author.SerializeToString())

    async def _sync_celebrity(self, session, effect) -> None:
        """Followers' celebrity sets and timelines as the author's flag is now."""
        author_id = effect["author"]
        await store.lock_author(session, author_id)
        if await store.is_hidden(session, author_id):
            return  # in no feed either way; showing again puts them where they belong
        followers = await self._followers(session, author_id)
        if await store.is_celebrity(session, author_id):
            await self._timelines.add_celebrity(followers, author_id)
            return
        await self._timelines.remove([celebs_key(f) for f in followers], [author_id], sets=True)
        # All their recent entries, not only those never fanned out: a timeline rebuilt
        # while they were a celebrity left out the ones pushed before.
        length = self._timelines.length
        recent = await store.recent_entries(session, author_id, length + 1)
        await self._timelines.push([timeline_key(f) for f in followers], *newest(recent, length))

    async def _sync_visibility(self, session, effect) -> None:
        """Followers' timelines and celebrity sets as the author's hidden flag is now."""
        author_id = effect["author"]
        await store.lock_author(session, author_id)
        followers = await self._followers(session, author_id)
        length = self._timelines.length
        recent = await store.recent_entries(session, author_id, length + 1)
        if await store.is_hidden(session, author_id):
            # A timeline keeps its `length` newest entries: of an author's, no older ones
            # than their `length` newest can be among them.
            timelines = [timeline_key(f) for f in followers]
            await self._timelines.remove(timelines, [k.entry_id for k in recent])
            await self._timelines.remove([celebs_key(f) for f in followers], [author_id], sets=True)
        elif await store.is_celebrity(session, author_id):
            await self._timelines.add_celebrity(followers, author_id)
        else:
            await self._timelines.push(
                [timeline_key(f) for f in followers], *newest(recent, length)
            )

    async def _forget(self, session, effect) -> None:
        user, followers = effect["user"], effect["followers"]
        await self._timelines.remove([timeline_key(f) for f in followers], effect["entries"])
        await self._timelines.remove([celebs_key(f) for f in followers], [user], sets=True)
        await self._timelines.forget_user(user, effect["entries"])

    async def _backfill_all(self, session, effects: list[dict]) -> None:
        """Each new follow's author into the reader's feed: their recent entries into the
        timeline, or, for a celebrity, their name into the reader's celebrities."""
        pairs = [(e["reader"], e["author"]) for e in effects]
        if not pairs:
            return
        now = await store.follows_among(session, pairs)  # not unfollowed since
        pairs = [pair for pair in dict.fromkeys(pairs) if pair in now]
        rows = await store.find_authors(session, {author for _reader, author in pairs})
        plain = []
        for reader, author in pairs:
            row = rows.get(author)
            if row is not None and row.hidden:
                continue  # in no feed: showing again backfills every follower
            if row is not None and row.celebrity:
                await self._timelines.add_celebrity([reader], author)
            else:
                plain.append((reader, author))
        length = self._timelines.length
        recent = await store.recent_entries_of(session, {a for _r, a in plain}, length + 1)
        await self._timelines.push_all(
            [([timeline_key(r)], *newest(recent.get(a, []), length)) for r, a in plain]
        )

    async def _purge(self, session, effect) -> None:
        reader, author = effect["reader"], effect["author"]
        await store.lock_reader(session, reader)
        await store.lock_author(session, author, shared=True)
        if await store.follows_now(session, reader, author):
            return  # followed again since: the follow's effect backfilled
        # Whatever the timeline holds of theirs, deleted ones included: a delete whose
        # effect ran after this unfollow committed no longer counts the reader a follower.
        held = await self._timelines.members(timeline_key(reader))
        theirs = await store.entries_by(session, author, held)
        await self._timelines.remove([timeline_key(reader)], theirs)
        await self._timelines.remove([celebs_key(reader)], [author], sets=True)

    async def _fan_out_all(self, session, effects: list[dict]) -> None:
        """New entries into their authors' posts and, unless the author is a celebrity's
        (fanned in at read) or hidden (in no feed), their active followers' timelines."""
        found = await store.find_entries(session, [e["entry"] for e in effects])
        by_author: dict[str, list[store.EntryRow]] = {}
        for entry_id in dict.fromkeys(e["entry"] for e in effects):
            entry = found.get(entry_id)
            if entry is not None and not entry.deleted:  # else its delete's effect cleans up
                by_author.setdefault(entry.author_id, []).append(entry)
        if not by_author:
            return
        new = [entry for entries in by_author.values() for entry in entries]
        await self._timelines.cache_entries([(e.key.entry_id, e.author_id, e.body) for e in new])
        rows = await store.find_authors(session, by_author)
        spread = {  # author -> what goes into their followers' timelines
            author: keys
            for author, entries in by_author.items()
            if (keys := [e.key for e in entries if e.fanned_out])
            and not (author in rows and rows[author].hidden)
        }
        since = self._activity.active_since(datetime.now(UTC))
        followers = await store.active_followers_of(session, spread, since)
        started = time.monotonic()
        posts = [([posts_key(a)], [e.key for e in es], NO_FLOOR) for a, es in by_author.items()]
        timelines = [
            ([timeline_key(f) for f in followers.get(author, [])], keys, NO_FLOOR)
            for author, keys in spread.items()
        ]
        written = (await self._timelines.push_all(posts + timelines))[len(posts) :]
        for (author, keys), count in zip(spread.items(), written, strict=True):
            self.last_fanout = count
            reached = len(followers.get(author, []))
            if reached >= LOGGED_FANOUT:
                _log.info(
                    "fanned out %d entries to %d of %d active followers in %.0f ms",
                    len(keys),
                    count,
                    reached,
                    (time.monotonic() - started) * 1000,
                    extra={"author": author},
                )

    async def _recache(self, session, effect) -> None:
        await store.lock_author(session, effect["author"])
        entry = await store.find_entry(session, effect["entry"])
        if entry is not None and not entry.deleted:
            await self._timelines.cache_entry(entry.key.entry_id, effect["author"], entry.body)

    async def _remove(self, session, effect) -> None:
        author, entry_id = effect["author"], effect["entry"]
        await store.lock_author(session, author)
        await self._timelines.forget_entry(entry_id)
        await self._timelines.remove([posts_key(author)], [entry_id])
        if effect["timelines"]:
            followers = await self._followers(session, author)
            await self._timelines.remove([timeline_key(f) for f in followers], [entry_id])
