"""Applies sleep and profile events to the sleep statistics, a fetched batch at a time.

`analytics.nights` reads zentry.sleep.events: each entry is kept at the
highest revision seen (a delete wins over anything not newer), and every
night an event touched, before and after an update that moved it, is
recomputed from its live entries. Applying a batch again changes nothing.
`analytics.sleepers` reads zentry.user.events for each user's time zone and
nightly goal; each event sets the whole profile, so order within a user's
partition is all it needs. It is the service's only reader of user events,
so a deleted account (UserDeleted) is forgotten here by both parts of
analytics: its statistics, and its product events and sessions.
"""

from __future__ import annotations

from datetime import UTC, date

from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev

from services.analytics.product import store as product_store
from services.analytics.stats import store
from services.analytics.stats.domain import DEFAULT_GOAL_SECONDS
from services.analytics.stats.store import EntryRow, Sleeper
from services.kit import erasure
from services.kit.consumer import GATHER, BatchSubscription, Event
from services.kit.events import SLEEP_EVENTS, USER_EVENTS
from services.kit.zones import zone_or_utc

NIGHTS_GROUP = "analytics.nights"
SLEEPERS_GROUP = "analytics.sleepers"


def entry_row(state: sev.SleepEntryState, deleted: bool) -> EntryRow:
    """An entry as the statistics keep it: clock times in the zone the night was slept in."""
    tz = zone_or_utc(state.time_zone)
    start = state.start_time.ToDatetime(tzinfo=UTC)
    local_start = start.astimezone(tz)
    local_end = state.end_time.ToDatetime(tzinfo=UTC).astimezone(tz)
    return EntryRow(
        entry_id=state.entry_id,
        user_id=state.user_id,
        revision=state.revision,
        deleted=deleted,
        sleep_date=date.fromisoformat(state.sleep_date),
        start_time=start,
        seconds=state.duration.seconds,
        bedtime=local_start.hour * 60 + local_start.minute,
        wake_time=local_end.hour * 60 + local_end.minute,
        quality=state.quality,
    )


def supersedes(new: EntryRow, old: EntryRow | None) -> bool:
    """A higher revision wins; at the same revision, only a delete (of a live entry)."""
    if old is None:
        return True
    if new.revision != old.revision:
        return new.revision > old.revision
    return new.deleted and not old.deleted


class Projector:
    def subscriptions(
        self,
        sleep_topic: str = SLEEP_EVENTS,
        user_topic: str = USER_EVENTS,
        groups: tuple[str, str] = (NIGHTS_GROUP, SLEEPERS_GROUP),
    ) -> list[BatchSubscription]:
        """The nights' and the sleepers' groups (tests give their own topics and group names)."""
        return [
            BatchSubscription(
                groups[0],
                (sleep_topic,),
                (sev.SleepEntryCreated, sev.SleepEntryUpdated, sev.SleepEntryDeleted),
                self.apply_sleep_events,
                linger=GATHER,
            ),
            BatchSubscription(
                groups[1],
                (user_topic,),
                (uev.UserRegistered, uev.UserProfileUpdated, uev.UserDeleted),
                self.apply_profiles,
            ),
        ]

    async def apply_sleep_events(self, events: list[Event], session) -> None:
        incoming = [
            entry_row(p.entry, isinstance(p, sev.SleepEntryDeleted)) for _envelope, p in events
        ]
        stored = await store.current_entries(session, {row.entry_id for row in incoming})
        latest = dict(stored)
        touched: set[tuple[str, date]] = set()
        for row in incoming:
            old = latest.get(row.entry_id)
            if supersedes(row, old):
                latest[row.entry_id] = row
                touched.add((row.user_id, row.sleep_date))
                if old is not None:
                    touched.add((old.user_id, old.sleep_date))
        changed = [row for entry_id, row in latest.items() if stored.get(entry_id) != row]
        await store.save_entries(session, changed)
        await store.recompute_nights(session, touched)

    async def apply_profiles(self, events: list[Event], session) -> None:
        for _envelope, payload in events:
            if isinstance(payload, uev.UserDeleted):
                await self.forget_user(session, payload.user_id)
                continue
            profile = payload.profile
            goal = profile.sleep_goal.seconds or DEFAULT_GOAL_SECONDS
            await store.save_sleeper(
                session, profile.user_id, Sleeper(profile.time_zone or "UTC", goal)
            )

    async def forget_user(self, session, user_id: str) -> None:
        """A deleted account, from both parts of analytics, recorded so no replay restores it."""
        await store.forget_user(session, user_id)  # nights, entries, settings
        await product_store.forget_user(session, user_id)  # raw events, sessions
        await erasure.record(session, user_id)
