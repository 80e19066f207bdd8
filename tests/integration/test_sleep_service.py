"""The sleep service's use cases against real PostgreSQL and Kafka: entries, overlaps, events.

Each test has a database of its own, migrated like the service's; events go
through the real outbox relay to the real zentry.sleep.events topic, where
the test reads only its own user's.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import pytest
from sqlalchemy import func, select
from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev

from services.kit.db import Database, migrate
from services.kit.discovery import Balancer, Consul
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
)
from services.kit.events import SLEEP_EVENTS
from services.kit.outbox import OutboxRelay
from services.kit.profiles import OwnProfiles
from services.kit.tables import outbox
from services.sleep import store
from services.sleep.actions import SleepActions
from services.sleep.app import MIGRATIONS
from services.sleep.directory import UserDirectory
from tests.sleep_world import (
    NIGHT_END,
    NIGHT_START,
    apply,
    apply_profile_event,
    known_user,
    night,
)
from tests.support import TopicTail, unpack


@pytest.fixture
async def db(blank_database):
    await asyncio.to_thread(migrate, blank_database, MIGRATIONS)
    database = Database(blank_database)
    yield database
    await database.dispose()


@pytest.fixture
async def actions(db, settings):
    consul = Consul(settings.consul.http_url, settings.consul.token)
    users = Balancer(consul, "user")  # never asked: every user here is in the directory
    # No user service to ask either: the caller's own zone comes from the directory's copy.
    yield SleepActions(db, UserDirectory(db, users, OwnProfiles(None), timeout=0.5))
    await users.aclose()
    await consul.aclose()


async def outbox_rows(db: Database) -> int:
    async with db.transaction() as session:
        return (await session.execute(select(func.count()).select_from(outbox))).scalar_one()


async def relay_everything(db: Database, bootstrap: str) -> None:
    relay = OutboxRelay(db, bootstrap, client_id="itest-sleep")
    while await relay.relay_batch():
        pass


async def test_each_accepted_change_publishes_exactly_one_event(actions, db, settings):
    owner, stranger = await known_user(db, "America/St_Johns"), await known_user(db)
    tail = TopicTail(settings.kafka.bootstrap_servers, SLEEP_EVENTS)

    created = await actions.create(owner, **night(quality=3, tags=["Travel"], request_id="r-1"))
    retried = await actions.create(owner, **night(quality=3, tags=["Travel"], request_id="r-1"))
    assert retried == created
    with pytest.raises(FailedPrecondition, match=f"overlaps your entry {created.id}"):
        await actions.create(owner, **night(start=NIGHT_START + timedelta(hours=1)))
    new_end = NIGHT_END + timedelta(minutes=30)
    changes = {"end_time": new_end, "quality": 5}
    updated = await actions.update(owner, created.id, changes, ["end_time", "quality"])
    assert await actions.update(owner, created.id, changes, ["end_time", "quality"]) == updated
    # The owner shares with followers (the default): to a stranger the entry is not there.
    with pytest.raises(NotFound):
        await actions.update(stranger, created.id, {"quality": 1}, ["quality"])
    with pytest.raises(NotFound):
        await actions.delete(stranger, created.id)
    await actions.delete(owner, created.id)
    assert await outbox_rows(db) == 3, "created, updated, deleted: nothing for the rest"

    await relay_everything(db, settings.kafka.bootstrap_servers)
    events = tail.read(
        lambda seen: sum(e.subject_user_id == owner.user_id for e in seen) >= 3, settle=1.5
    )
    mine = [e for e in events if e.subject_user_id == owner.user_id]
    assert [e.event_type for e in mine] == [
        "zentry.events.v1.SleepEntryCreated",
        "zentry.events.v1.SleepEntryUpdated",
        "zentry.events.v1.SleepEntryDeleted",
    ]
    assert {tail.keys[e.event_id] for e in mine} == {owner.user_id}
    assert {e.producer for e in mine} == {"sleep"}
    assert not any(e.subject_user_id == stranger.user_id for e in events)

    first = unpack(mine[0], sev.SleepEntryCreated).entry
    assert first.entry_id == created.id and first.user_id == owner.user_id
    assert first.start_time.ToDatetime(UTC) == NIGHT_START
    assert first.end_time.ToDatetime(UTC) == NIGHT_END
    assert first.duration.ToTimedelta() == timedelta(hours=8)
    assert first.time_zone == "America/St_Johns", "the profile's zone when none is given"
    assert first.sleep_date == created.sleep_date.isoformat()
    assert (first.quality, list(first.tags), first.revision) == (3, ["travel"], 1)

    change = unpack(mine[1], sev.SleepEntryUpdated)
    assert change.previous == first, "the previous values, to take out of aggregates"
    assert change.entry.end_time.ToDatetime(UTC) == new_end
    assert change.entry.duration.ToTimedelta() == timedelta(hours=8, minutes=30)
    assert (change.entry.quality, change.entry.revision) == (5, 2)
    assert {"end_time", "duration", "quality"} <= set(change.changed_fields)
    assert "start_time" not in change.changed_fields

    gone = unpack(mine[2], sev.SleepEntryDeleted).entry
    assert gone.entry_id == created.id and gone.revision == 2 and gone.quality == 5


async def test_concurrent_retries_with_one_request_id_record_one_night(actions, db):
    owner = await known_user(db)
    results = await asyncio.gather(
        *(actions.create(owner, **night(request_id="same-id")) for _ in range(6))
    )
    assert len({entry.id for entry in results}) == 1
    async with db.transaction() as session:
        entries = await store.list_entries(session, owner.user_id, None, None, 10, None)
    assert [e.id for e in entries] == [results[0].id]
    assert await outbox_rows(db) == 1


async def test_racing_overlapping_creates_leave_exactly_one_night(actions, db):
    owner = await known_user(db)
    shifts = [timedelta(minutes=15 * n) for n in range(6)]
    outcomes = await asyncio.gather(
        *(actions.create(owner, **night(start=NIGHT_START + s, end=NIGHT_END + s)) for s in shifts),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if not isinstance(o, Exception)]
    losers = [o for o in outcomes if isinstance(o, Exception)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, FailedPrecondition) for o in losers), losers
    assert all(winners[0].id in o.message for o in losers), "the refusal names the night in the way"
    assert await outbox_rows(db) == 1


async def test_touching_nights_do_not_overlap(actions, db):
    owner = await known_user(db)
    await actions.create(owner, **night())
    nap = await actions.create(owner, **night(start=NIGHT_END, end=NIGHT_END + timedelta(hours=1)))
    assert nap.start_time == NIGHT_END


async def test_a_request_id_names_one_night(actions, db):
    owner, other = await known_user(db), await known_user(db)
    first = await actions.create(owner, **night(request_id="r-7"))
    with pytest.raises(AlreadyExists, match=f"'r-7' was already used .* {first.id}"):
        await actions.create(owner, **night(request_id="r-7", quality=2))
    # Request ids belong to their user: another user's r-7 is a new night.
    assert (await actions.create(other, **night(request_id="r-7"))).user_id == other.user_id
    await actions.delete(owner, first.id)
    with pytest.raises(FailedPrecondition, match="has since been deleted"):
        await actions.create(owner, **night(request_id="r-7"))
    async with db.transaction() as session:
        assert await store.list_entries(session, owner.user_id, None, None, 10, None) == []


async def test_the_directory_follows_profile_events(actions, db):
    owner = await known_user(db, "Asia/Tokyo")
    tokyo = await actions.create(owner, **night())
    assert tokyo.time_zone == "Asia/Tokyo"
    await apply_profile_event(db, uev.UserProfileUpdated, owner, "Pacific/Kiritimati")
    later = night(start=NIGHT_START + timedelta(days=1), end=NIGHT_END + timedelta(days=1))
    kiritimati = await actions.create(owner, **later)
    assert kiritimati.time_zone == "Pacific/Kiritimati"
    assert tokyo.time_zone == "Asia/Tokyo", "an entry keeps the zone it was slept in"
    given = night(start=NIGHT_START - timedelta(days=1), end=NIGHT_END - timedelta(days=1))
    assert (await actions.create(owner, **{**given, "time_zone": "UTC"})).time_zone == "UTC"


async def test_who_reads_whose_nights_follows_the_owners_setting(actions, db):
    """The owner's setting and the follows, as the user events bring them, decide who reads
    an entry or the list; a refusal of an entry is the answer for an entry that is not there."""
    owner, follower, stranger = await known_user(db), await known_user(db), await known_user(db)
    await apply(
        db,
        uev.FollowCreated(follower_id=follower.user_id, followee_id=owner.user_id),
        follower.user_id,
    )
    entry = await actions.create(owner, **night())

    async def readers() -> set[str]:
        seen = set()
        for name, viewer in (("owner", owner), ("follower", follower), ("stranger", stranger)):
            try:
                assert (await actions.get(viewer, entry.id)).id == entry.id
            except NotFound:
                with pytest.raises(PermissionDenied):
                    await actions.list(viewer, owner.user_id, None, None, 10, None)
                continue
            assert [
                e.id for e in await actions.list(viewer, owner.user_id, None, None, 10, None)
            ] == [entry.id]
            seen.add(name)
        return seen

    assert await readers() == {"owner", "follower"}, "followers, the default"
    for setting, expected in (
        ("everyone", {"owner", "follower", "stranger"}),
        ("onlyMe", {"owner"}),
        ("followers", {"owner", "follower"}),
    ):
        await apply_profile_event(db, uev.UserProfileUpdated, owner, "Europe/Paris", setting)
        assert await readers() == expected, setting
    await apply(
        db,
        uev.FollowDeleted(follower_id=follower.user_id, followee_id=owner.user_id),
        follower.user_id,
    )
    assert await readers() == {"owner"}
    with pytest.raises(NotFound, match=f"No sleep entry with id {entry.id}"):
        await actions.delete(follower, entry.id)


async def test_a_refused_overlap_leaves_its_request_id_free_for_the_retry(actions, db):
    """The constraint's refusal rolls the whole create back, the request id's claim with it:
    once the other night is gone, the same request records the night."""
    owner = await known_user(db)
    first = await actions.create(owner, **night())
    later = night(
        start=NIGHT_START + timedelta(hours=1),
        end=NIGHT_END + timedelta(hours=1),
        request_id="r-overlap",
    )
    with pytest.raises(FailedPrecondition, match=f"overlaps your entry {first.id}"):
        await actions.create(owner, **later)
    await actions.delete(owner, first.id)
    recorded = await actions.create(owner, **later)
    assert recorded.start_time == later["start"]
    assert await actions.create(owner, **later) == recorded, "and it is claimed now"


async def test_an_update_into_another_night_names_it_and_changes_nothing(actions, db):
    owner = await known_user(db)
    first = await actions.create(owner, **night())
    second = await actions.create(
        owner, **night(start=NIGHT_END, end=NIGHT_END + timedelta(hours=7))
    )
    earlier = {"start_time": NIGHT_END - timedelta(hours=1)}
    with pytest.raises(FailedPrecondition, match=f"overlaps your entry {first.id}"):
        await actions.update(owner, second.id, earlier, ["start_time"])
    assert await actions.get(owner, second.id) == second
