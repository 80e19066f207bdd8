"""Nights started live against real PostgreSQL: start, finish, cancel, abandon.

The sleep service's clock is the test's, so a night can be left open for a
day without waiting one. Events are read from the outbox, in the order the
relay publishes them (tests/integration/test_sleep_service.py follows them
onto Kafka).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select
from zentry.events.v1 import envelope_pb2
from zentry.events.v1 import sleep_events_pb2 as sev

from services.kit.db import Database, migrate
from services.kit.discovery import Balancer, Consul
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.profiles import OwnProfiles
from services.kit.tables import outbox
from services.sleep import store
from services.sleep.actions import SleepActions
from services.sleep.app import MIGRATIONS
from services.sleep.directory import UserDirectory
from services.sleep.domain import State
from tests.sleep_world import NOW, known_user, night
from tests.support import unpack


class Clock:
    """The sleep service's now, moved by the test."""

    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
async def db(blank_database):
    await asyncio.to_thread(migrate, blank_database, MIGRATIONS)
    database = Database(blank_database)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def actions(db, settings, clock):
    consul = Consul(settings.consul.http_url, settings.consul.token)
    users = Balancer(consul, "user")  # never asked: every user here is in the directory
    directory = UserDirectory(db, users, OwnProfiles(None), timeout=0.5)
    yield SleepActions(db, directory, clock=clock)
    await users.aclose()
    await consul.aclose()


async def events_of(db, user_id: str) -> list[tuple[str, object]]:
    """(short type name, payload) of each event of the user in the outbox, oldest first."""
    async with db.transaction() as session:
        rows = (
            await session.execute(
                select(outbox.c.envelope).where(outbox.c.key == user_id).order_by(outbox.c.id)
            )
        ).scalars()
        found = []
        for raw in rows:
            event = envelope_pb2.EventEnvelope.FromString(raw)
            name = event.event_type.rsplit(".", 1)[-1]
            found.append((name, unpack(event, getattr(sev, name))))
        return found


def start(**fields) -> dict:
    return {"time_zone": "", "planned_end": None, "request_id": "", **fields}


async def test_a_live_night_counts_from_its_finish(actions, db, clock):
    owner = await known_user(db, "Asia/Tokyo")
    opened = await actions.start(owner, **start(planned_end=NOW + timedelta(hours=8)))
    assert (opened.state, opened.start_time, opened.end_time) == (State.OPEN, NOW, None)
    assert opened.time_zone == "Asia/Tokyo" and opened.planned_end_time == NOW + timedelta(hours=8)

    clock.advance(hours=7, minutes=30)
    finished = await actions.finish(owner, opened.id, None, 4)
    assert finished.state == State.RECORDED
    assert (finished.end_time, finished.quality) == (clock.now, 4)
    assert finished.night.duration == timedelta(hours=7, minutes=30)
    # A retry of the finish (its answer lost) gets the same night; a different end does not.
    assert await actions.finish(owner, opened.id, None, 0) == finished
    assert await actions.finish(owner, opened.id, clock.now, 4) == finished
    with pytest.raises(FailedPrecondition, match="already recorded"):
        await actions.finish(owner, opened.id, clock.now - timedelta(hours=1), 0)

    events = await events_of(db, owner.user_id)
    assert [name for name, _ in events] == ["SleepEntryStarted", "SleepEntryCreated"]
    started, created = events[0][1], events[1][1]
    assert started.entry.entry_id == opened.id and started.entry.revision == 1
    assert not started.entry.HasField("end_time") and started.entry.sleep_date == ""
    assert started.planned_end_time.ToDatetime().replace(tzinfo=NOW.tzinfo) == NOW + timedelta(
        hours=8
    )
    assert created.entry.revision == 2, "above the start's, for consumers that compare them"
    assert not started.entry.HasField("record_time"), "recorded only when finished"
    assert created.entry.record_time.ToDatetime() >= started.entry.create_time.ToDatetime()
    assert created.entry.duration.ToTimedelta() == timedelta(hours=7, minutes=30)
    assert created.entry.sleep_date == finished.sleep_date.isoformat()


async def test_one_open_night_at_a_time(actions, db):
    owner = await known_user(db)
    opened = await actions.start(owner, **start(request_id="tonight"))
    assert await actions.start(owner, **start(request_id="tonight")) == opened, "a retry"
    with pytest.raises(FailedPrecondition, match=f"open since .*entry {opened.id}"):
        await actions.start(owner, **start())
    await actions.cancel(owner, opened.id)

    # Racing starts (two devices): one opens, the others are told which night is open.
    outcomes = await asyncio.gather(
        *(actions.start(owner, **start()) for _ in range(5)), return_exceptions=True
    )
    winners = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(winners) == 1, outcomes
    assert all(
        isinstance(o, FailedPrecondition) and winners[0].id in o.message
        for o in outcomes
        if o not in winners
    ), outcomes
    names = [name for name, _ in await events_of(db, owner.user_id)]
    assert names == ["SleepEntryStarted", "SleepEntryCancelled", "SleepEntryStarted"]


async def test_a_finish_meets_every_rule_of_a_recorded_night(actions, db, clock):
    owner = await known_user(db)
    opened = await actions.start(owner, **start())
    clock.advance(minutes=5)
    with pytest.raises(InvalidArgument, match="end_time: the night lasts 5 min") as short:
        await actions.finish(owner, opened.id, None, 0)
    assert short.value.violations[0].field == "end_time"
    with pytest.raises(InvalidArgument, match="quality"):
        await actions.finish(owner, opened.id, None, 9)

    # A nap recorded after the fact inside the open night: open nights block nothing, but
    # the finish is refused, naming the nap, and the night stays open.
    clock.advance(hours=8)
    nap = await actions.create(
        owner, **night(start=NOW + timedelta(hours=2), end=NOW + timedelta(hours=3))
    )
    with pytest.raises(FailedPrecondition, match=f"overlaps your entry {nap.id}"):
        await actions.finish(owner, opened.id, None, 0)
    async with db.transaction() as session:
        assert (await store.get_entry(session, opened.id)).state == State.OPEN
    finished = await actions.finish(owner, opened.id, NOW + timedelta(hours=2), 0)
    assert finished.end_time == nap.start_time, "touching nights do not overlap"


async def test_a_night_left_open_for_a_day_is_abandoned_until_given_an_end(actions, db, clock):
    owner, other = await known_user(db), await known_user(db)
    left = await actions.start(owner, **start())
    kept = await actions.start(other, **start())
    clock.advance(hours=23, minutes=59)
    assert await actions.abandon_overdue() == 0
    clock.advance(minutes=2)
    await actions.cancel(other, kept.id)  # the owner may still cancel at any time before
    assert await actions.abandon_overdue() == 1
    assert await actions.abandon_overdue() == 0, "each night is abandoned once"

    abandoned = await actions.get(owner, left.id)
    assert abandoned.state == State.ABANDONED and abandoned.end_time is None
    with pytest.raises(FailedPrecondition, match="Only an open night can be cancelled"):
        await actions.cancel(owner, left.id)
    with pytest.raises(InvalidArgument, match="end_time: is required"):
        await actions.finish(owner, left.id, None, 0)
    noted = await actions.update(owner, left.id, {"note": "forgot"}, ["note"])
    assert noted.state == State.ABANDONED and noted.note == "forgot"

    # Its owner gives it an end: it is recorded, under the usual rules.
    with pytest.raises(InvalidArgument, match="end_time: the night lasts 24 h 1 min"):
        await actions.update(owner, left.id, {"end_time": clock.now}, ["end_time"])
    end = NOW + timedelta(hours=7)
    recorded = await actions.update(owner, left.id, {"end_time": end}, ["end_time"])
    assert (recorded.state, recorded.end_time, recorded.note) == (State.RECORDED, end, "forgot")

    names = [name for name, _ in await events_of(db, owner.user_id)]
    assert names == ["SleepEntryStarted", "SleepEntryAbandoned", "SleepEntryCreated"]
    abandoned_event = (await events_of(db, owner.user_id))[1][1]
    assert abandoned_event.entry.revision == 2 and not abandoned_event.entry.HasField("end_time")


async def test_starting_again_abandons_the_overdue_night_first(actions, db, clock):
    owner = await known_user(db)
    left = await actions.start(owner, **start())
    clock.advance(hours=30)  # no sweep ran meanwhile
    with pytest.raises(InvalidArgument, match=r"end_time: is required: .* open for more than"):
        await actions.finish(owner, left.id, None, 0)
    tonight = await actions.start(owner, **start())
    assert tonight.state == State.OPEN
    assert (await actions.get(owner, left.id)).state == State.ABANDONED
    names = [name for name, _ in await events_of(db, owner.user_id)]
    assert names == ["SleepEntryStarted", "SleepEntryAbandoned", "SleepEntryStarted"]


async def test_unfinished_nights_are_their_owners_alone(actions, db, clock):
    owner, reader = await known_user(db), await known_user(db)
    recorded = await actions.create(owner, **night())
    opened = await actions.start(owner, **start())

    # Only recorded nights are listed, unless the owner asks for their unfinished ones too.
    async with db.transaction() as session:
        listed = await store.list_entries(session, owner.user_id, None, None, 10, None)
        everything = await store.list_entries(session, owner.user_id, None, None, 10, None, True)
    assert [e.id for e in listed] == [recorded.id]
    assert [e.id for e in everything] == [opened.id, recorded.id], "placed by their start"
    with pytest.raises(InvalidArgument, match="show_unfinished"):
        await actions.list(reader, owner.user_id, None, None, 10, None, True)
    # Even a reader who may see the owner's nights does not see an open one.
    with pytest.raises(NotFound):
        await actions.get(reader, opened.id)

    # Its owner may change what it says, but its times only by finishing it; no event.
    with pytest.raises(FailedPrecondition, match="still open: finish it"):
        await actions.update(owner, opened.id, {"end_time": clock.now}, ["end_time"])
    with pytest.raises(FailedPrecondition, match="start_time changes with its end"):
        await actions.update(owner, opened.id, {"start_time": NOW}, ["start_time"])
    with pytest.raises(InvalidArgument, match="tags"):
        await actions.update(owner, opened.id, {"tags": ["no spaces"]}, ["tags"])
    tagged = await actions.update(owner, opened.id, {"tags": ["Travel"]}, ["tags"])
    assert tagged.tags == ["travel"] and tagged.state == State.OPEN
    await actions.delete(owner, opened.id)  # deleting an open night cancels it
    names = [name for name, _ in await events_of(db, owner.user_id)]
    assert names == ["SleepEntryCreated", "SleepEntryStarted", "SleepEntryCancelled"]
