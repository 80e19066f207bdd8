"""Applies events to the leaderboards: sleep events in batches, user events one at a time.

`leaderboard.scores` reads zentry.sleep.events with the kit's batch runner:
each fetched batch becomes score changes (a created night adds to the four
windows of its sleep date, a deleted one takes away, an update does both with
the values the event carries from before), applied in one statement that
skips events already recorded, then written to the boards in one Redis round
trip, all in one transaction. `leaderboard.directory` keeps the names, time
zones, privacy settings and follows the queries show and scope by, also a
batch at a time: each event sets state (a whole profile, a follow present or
absent), so applying a redelivered suffix of a partition again, in order, ends
the same. A profile that starts or stops being ranked on the global boards
puts its scores on, or takes them off, every window in Redis (store's locks
keep this and the score batches from missing each other). A deleted account
(UserDeleted) comes off every window and out of every table, and no later or
replayed event of theirs is applied (services.kit.erasure).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev

from services.kit import erasure, visibility
from services.kit.consumer import GATHER, BatchSubscription, Event
from services.kit.events import SLEEP_EVENTS, USER_EVENTS
from services.leaderboard import domain, store, streaks
from services.leaderboard.boards import Boards

SCORES_GROUP = "leaderboard.scores"
DIRECTORY_GROUP = "leaderboard.directory"


def changes_of(events: list[Event]) -> list[store.Change]:
    """What each event does to each window, in order.

    A change is keyed by what happened to the entry (created, updated to revision
    r, deleted), not by the event's id: a redelivered event, and an event
    published twice under two ids, both count once.
    """
    changes = []
    for envelope, payload in events:
        added = removed = None
        if isinstance(payload, sev.SleepEntryDeleted):
            removed = _night(payload.entry)
        else:
            added = _night(payload.entry)
            if isinstance(payload, sev.SleepEntryUpdated) and payload.HasField("previous"):
                removed = _night(payload.previous)
        when = envelope.occur_time.ToDatetime(tzinfo=UTC)
        happened = f"{payload.entry.entry_id}/{type(payload).__name__}/{payload.entry.revision}"
        for window, (seconds, nights) in domain.deltas(added, removed).items():
            changes.append(
                store.Change(happened, window, payload.entry.user_id, seconds, nights, when)
            )
    return changes


def _day(score: store.Score) -> date:
    return date.fromisoformat(score.window_id)


def _night(state: sev.SleepEntryState) -> tuple[date, int]:
    return date.fromisoformat(state.sleep_date), state.duration.seconds


class Projector:
    def __init__(self, boards: Boards):
        self._boards = boards
        self._on_user = {
            uev.UserRegistered: self._save_profile,
            uev.UserProfileUpdated: self._save_profile,
            uev.FollowCreated: self._follow,
            uev.FollowDeleted: self._unfollow,
            uev.UserDeleted: self._deleted,
        }

    def subscriptions(
        self,
        user_topic: str = USER_EVENTS,
        sleep_topic: str = SLEEP_EVENTS,
        groups: tuple[str, str] = (SCORES_GROUP, DIRECTORY_GROUP),
    ) -> tuple[BatchSubscription, BatchSubscription]:
        """The two consumer groups (tests give their own topics and group names)."""
        return (
            BatchSubscription(
                groups[0],
                (sleep_topic,),
                (sev.SleepEntryCreated, sev.SleepEntryUpdated, sev.SleepEntryDeleted),
                self.apply_batch,
                linger=GATHER,
            ),
            BatchSubscription(
                groups[1],
                (user_topic,),
                tuple(self._on_user),
                self.apply_directory,
            ),
        )

    async def apply_batch(self, events: list[Event], session) -> None:
        changes = changes_of(events)
        users = {c.user_id for c in changes}
        await store.lock_users(session, users, shared=True)
        await store.lock_windows(session, {c.window_id for c in changes}, shared=True)
        scores = await store.apply(session, changes)
        await self._streaks(session, scores)
        await self._boards.update(scores, await store.ranked(session, users))

    async def _streaks(self, session, scores: list[store.Score]) -> None:
        """Each user's runs of nights at their goal, joined or split at the dates whose sums
        changed, and the streak of every window holding such a date (streaks.py)."""
        daily: dict[str, list[store.Score]] = {}
        for score in scores:
            if domain.kind_of(score.window_id) == "daily":
                daily.setdefault(score.user_id, []).append(score)
        if not daily:
            return
        goals = await store.goals(session, daily)
        # Every run within the windows of the changed dates (and touching them): enough to
        # join, split and measure them all, but all-time's, read once the runs are written.
        near = await store.runs_near(
            session, {user: streaks.span(_day(s) for s in days) for user, days in daily.items()}
        )
        gone, new = [], []
        reached: dict[tuple[str, str], datetime] = {}  # (window, user) -> when
        ran: dict[str, list[streaks.Run]] = {}
        for user, days in daily.items():
            before = sorted(near[user])
            runs = before
            for score in days:
                meets = streaks.met(score.seconds, score.nights, goals[user])
                runs = streaks.rerun(runs, _day(score), meets)
            if runs == before:
                continue
            ran[user] = runs
            gone += [(user, first) for first, _last in set(before) - set(runs)]
            new += [(user, *run) for run in set(runs) - set(before)]
            for score in days:
                for window in domain.windows_of(_day(score)):
                    at = reached.get((window, user))
                    reached[window, user] = max(at, score.reached_at) if at else score.reached_at
        await store.replace_runs(session, gone, new)
        all_time = await store.longest_runs(session, ran)
        await store.set_streaks(
            session,
            [
                store.Streak(
                    window,
                    user,
                    all_time[user]
                    if window == domain.ALL_TIME
                    else streaks.longest(ran[user], *streaks.window_dates(window)),
                    at,
                )
                for (window, user), at in reached.items()
            ],
        )

    async def apply_directory(self, events: list[Event], session) -> None:
        profiles = [p.profile for _e, p in events if isinstance(p, _PROFILES)]
        deleted = {p.user_id for _e, p in events if isinstance(p, uev.UserDeleted)}
        changing = {p.user_id for p in profiles} | deleted
        await store.lock_users(session, changing, shared=False)
        before = await store.find_users(session, changing)
        for _envelope, payload in events:
            await self._on_user[type(payload)](payload, session)
        after = await store.find_users(session, changing - deleted)
        flipped = {
            user_id
            for user_id, row in after.items()
            if row.ranked != (user_id in before and before[user_id].ranked)
        } | deleted
        for user_id, row in after.items():
            known = before.get(user_id)
            previous = known.goal_seconds if known else store.DEFAULT_GOAL_SECONDS
            if row.goal_seconds != previous:  # nights before the profile took the default
                await self._new_goal(session, user_id, row.goal_seconds)
        if flipped:
            scores = [
                s for user in sorted(flipped) for s in await store.scores_of_user(session, user)
            ]
            await store.lock_windows(session, {s.window_id for s in scores}, shared=False)
            ranked = {user for user in flipped - deleted if after[user].ranked}
            await self._boards.update(scores, ranked)
        for user in deleted:  # off every board above; now every row, for good
            await store.forget_user(session, user)
            await erasure.record(session, user)

    async def _new_goal(self, session, user_id: str, goal_seconds: int) -> None:
        """A user's runs and streaks again from their daily sums, measured by their new goal
        (under their user lock, which their score batches wait for)."""
        await store.forget_runs(session, user_id)
        runs = streaks.runs_of(await store.days_at_goal(session, user_id, goal_seconds))
        await store.replace_runs(session, [], [(user_id, *run) for run in runs])
        now = datetime.now(UTC)
        await store.set_streaks(
            session,
            [
                store.Streak(w, user_id, streaks.longest(runs, *streaks.window_dates(w)), now)
                for w in await store.windows_of_user(session, user_id)
            ],
        )

    # -- user events, one at a time within apply_directory's batch ---------------

    async def _save_profile(self, payload, session) -> None:
        p = payload.profile
        await store.save_user(
            session,
            store.UserRow(
                p.user_id,
                p.username,
                p.display_name,
                p.time_zone or "UTC",
                visibility.audience(p.nights_visible_to),
                p.show_on_global_boards,
                p.sleep_goal.seconds or store.DEFAULT_GOAL_SECONDS,
            ),
        )

    async def _follow(self, payload, session) -> None:
        await store.add_follow(session, payload.follower_id, payload.followee_id)

    async def _unfollow(self, payload, session) -> None:
        await store.remove_follow(session, payload.follower_id, payload.followee_id)

    async def _deleted(self, payload, session) -> None:
        """Done by apply_directory, after the batch's other events (see there)."""


_PROFILES = (uev.UserRegistered, uev.UserProfileUpdated)
