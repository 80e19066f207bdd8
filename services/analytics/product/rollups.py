"""Applies accepted client events: raw rows, counts, sessions, unique visitors, and each
signed-in user's first-seen time and active days (for retention cohorts, cohorts.py).

Counts are kept by event name and by each dimension's value (page, referrer,
each property), as many distinct ones a day as cardinality.py admits.

One fetched batch is one transaction (the kit's batch runner), which writes the
rows other batches share last. The raw insert says which events are new (an
event id seen before inserts nothing), and only those are counted,
sessionized and added to the visitor sketches, so a redelivered or resent
event counts once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC

from zentry.events.v1 import analytics_events_pb2 as aev

from services.analytics.product import cardinality, cohorts, periods, sessions, store
from services.analytics.product.cardinality import Caps
from services.analytics.product.tracking import PAGE_VIEW
from services.analytics.product.uniques import Uniques
from services.kit.consumer import GATHER, BatchSubscription, Event
from services.kit.events import CLIENT_EVENTS

GROUP = "analytics.rollups"


class Rollups:
    def __init__(self, uniques: Uniques, caps: Caps):
        self._uniques = uniques
        self._caps = caps

    def subscriptions(
        self, topic: str = CLIENT_EVENTS, group: str = GROUP
    ) -> list[BatchSubscription]:
        """The rollups' one group (tests give their own topic and group name)."""
        wanted = (aev.ClientEventAccepted,)
        return [BatchSubscription(group, (topic,), wanted, self.apply, linger=GATHER)]

    async def apply(self, events: list[Event], session) -> None:
        rows = {}
        for _envelope, e in events:
            rows.setdefault(e.event_id, (e, _raw_row(e)))
        new_ids = await store.insert_new(session, [row for _e, row in rows.values()])
        new = sorted(
            (e for e, _row in rows.values() if e.event_id in new_ids),
            key=lambda e: (e.visitor_id, e.event_time.ToNanoseconds()),
        )
        if not new:
            return
        labelled = await cardinality.labels(session, new, self._caps)
        totals: Counter = Counter()
        minutes: Counter = Counter()
        visitors: dict = defaultdict(set)
        spans: dict = {}
        activity = cohorts.Activity()
        for e in new:
            when = e.event_time.ToDatetime(tzinfo=UTC)
            bucket = periods.bucket_of(when)
            name, labels = labelled[e.event_id]
            for dimension, value in labels:
                totals[(name, dimension, value, bucket)] += 1
            minutes[(name, when.replace(second=0, microsecond=0))] += 1
            visitors[bucket].add(e.visitor_id)
            first, last = spans.get(e.visitor_id, (when, when))
            spans[e.visitor_id] = (min(first, when), max(last, when))
            if e.user_id:
                activity.add(e.user_id, when)
        known = await store.visitor_sessions(session, spans)
        for e in new:
            sessions.assign(
                known[e.visitor_id],
                e.visitor_id,
                e.event_time.ToDatetime(tzinfo=UTC),
                e.name == PAGE_VIEW,
            )
        await store.save_sessions(
            session, [s for found in known.values() for s in found if s.changed]
        )
        await store.add_activity(session, activity)
        # Last, the rows every batch shares (counts of the hour, its sketch): they stay locked
        # until the commit, so another process's batch waits on them only that long.
        await store.add_counts(session, totals)
        await store.add_minute_counts(session, minutes)
        await self._uniques.add(session, visitors)


def _raw_row(e: aev.ClientEventAccepted) -> dict:
    return {
        "event_id": e.event_id,
        "name": e.name,
        "event_time": e.event_time.ToDatetime(tzinfo=UTC),
        "receive_time": e.receive_time.ToDatetime(tzinfo=UTC),
        "visitor_id": e.visitor_id,
        "user_id": e.user_id or None,
        "client_session_id": e.client_session_id,
        "page": e.page,
        "referrer": e.referrer,
        "properties": dict(e.properties),
    }
