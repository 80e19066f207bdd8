"""Bounded tables on the real PostgreSQL (and Kafka): every swept table loses what is older
than its retention and keeps the rest, a bounded batch per transaction, with any number of
sweepers at once; and a consumer still recognises an event handed to it again in the window.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer
from sqlalchemy import text
from zentry.events.v1 import user_events_pb2

from services.kit.addresses import kafka_security
from services.kit.consumer import ConsumerRunner, Subscription
from services.kit.db import Database, migrate
from services.kit.events import envelope
from services.kit.retention import Retention, RetentionSettings, RetentionSweeper, sweep_batch
from services.kit.topics import REDRIVEN_FOR_HEADER
from services.leaderboard import store as leaderboard_store
from tests.support import eventually_async, run_until, unique

SERVICES = Path(__file__).resolve().parents[2] / "services"
WEEK = timedelta(days=7)
#: Small batches, so that a handful of rows takes several.
SETTINGS = RetentionSettings(interval=0.1, batch=7, processed_events=WEEK)


async def migrated(url: str, service: str, revision: str = "head") -> Database:
    await asyncio.to_thread(migrate, url, SERVICES / service / "migrations", revision)
    return Database(url)


@pytest.fixture
async def sleep_db(blank_database):
    db = await migrated(blank_database, "sleep")
    yield db
    await db.dispose()


async def rows(db: Database, query: str, **params) -> list[tuple]:
    async with db.transaction() as session:
        return [tuple(r) for r in await session.execute(text(query), params)]


async def age_processed_events(db: Database, ages: dict[str, timedelta]) -> None:
    """A processed event per id, applied `age` ago."""
    async with db.transaction() as session:
        for event_id, age in ages.items():
            await session.execute(
                text(
                    "INSERT INTO processed_events (consumer, event_id, processed_at) "
                    "VALUES ('g', :id, now() - CAST(:age AS interval))"
                ),
                {"id": event_id, "age": age},
            )


def ages(old: int, young: int) -> dict[str, timedelta]:
    """`old` ids of 8 to 30 days ago, `young` ones of 6 days ago to now."""
    made = {f"old-{n}": timedelta(days=8 + n % 23) for n in range(old)}
    made |= {f"young-{n}": timedelta(days=6, hours=23) * (n / max(young, 1)) for n in range(young)}
    return made


async def index_is_valid(db: Database, name: str) -> bool:
    found = await rows(
        db,
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = :name",
        name=name,
    )
    return found == [(True,)]


async def test_processed_events_older_than_the_retention_go_a_batch_at_a_time(sleep_db):
    await age_processed_events(sleep_db, ages(old=30, young=12))
    retention = SETTINGS.processed_events_retention()

    async with sleep_db.transaction() as session:  # one batch deletes at most its limit
        assert await sweep_batch(session, retention, 7) == 7
    assert len(await rows(sleep_db, "SELECT 1 FROM processed_events")) == 35

    sweeper = RetentionSweeper("test", sleep_db, [retention], SETTINGS)
    assert await sweeper.sweep() == {"processed_events": 23}
    kept = await rows(sleep_db, "SELECT event_id FROM processed_events")
    assert sorted(e for (e,) in kept) == sorted(f"young-{n}" for n in range(12))
    assert await sweeper.sweep() == {"processed_events": 0}

    # The sweep reads the index the migration built, not the whole table.
    assert await index_is_valid(sleep_db, "processed_events_by_time")
    async with sleep_db.transaction() as session:
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            await session.scalars(
                text(f"EXPLAIN {retention.statement()}"), {"keep": WEEK, "limit": 7}
            )
        )
    assert "processed_events_by_time" in plan


async def test_create_requests_are_remembered_for_their_window(sleep_db):
    user = str(uuid.uuid4())
    async with sleep_db.transaction() as session:
        for n, age in enumerate([timedelta(days=9), timedelta(days=8), timedelta(days=6), None]):
            await session.execute(
                text(
                    "INSERT INTO create_requests (user_id, request_id, entry_id, fingerprint, "
                    "created_at) VALUES (:u, :r, :e, 'f', now() - CAST(:age AS interval))"
                ),
                {"u": user, "r": f"r{n}", "e": str(uuid.uuid4()), "age": age or timedelta(0)},
            )
    sweeper = RetentionSweeper(
        "test", sleep_db, [Retention("create_requests", "created_at", WEEK)], SETTINGS
    )
    assert await sweeper.sweep() == {"create_requests": 2}
    kept = await rows(sleep_db, "SELECT request_id FROM create_requests ORDER BY 1")
    assert kept == [("r2",), ("r3",)]
    assert await index_is_valid(sleep_db, "create_requests_by_time")


async def test_the_feeds_processed_events_are_swept_too(blank_database):
    db = await migrated(blank_database, "feed")
    try:
        await age_processed_events(db, ages(old=9, young=3))
        sweeper = RetentionSweeper("test", db, [SETTINGS.processed_events_retention()], SETTINGS)
        assert await sweeper.sweep() == {"processed_events": 9}
        assert len(await rows(db, "SELECT 1 FROM processed_events")) == 3
        assert await index_is_valid(db, "processed_events_by_time")
    finally:
        await db.dispose()


async def test_the_score_ledger_is_swept_by_when_it_was_recorded(blank_database):
    """A change to a night years ago (a replay records those) is kept a retention from when it
    was written; rows from before the migration get the migration's time."""
    db = await migrated(blank_database, "leaderboard", "0004")
    user = str(uuid.uuid4())
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)

    def change(n: int) -> leaderboard_store.Change:
        return leaderboard_store.Change(f"e{n}/SleepEntryCreated/1", "all", user, 3600, 1, long_ago)

    try:
        async with db.transaction() as session:
            await leaderboard_store.apply(session, [change(0)])
        await db.dispose()
        db = await migrated(blank_database, "leaderboard")
        async with db.transaction() as session:
            await leaderboard_store.apply(session, [change(n) for n in range(1, 20)])
            await session.execute(
                text(
                    "UPDATE score_changes SET recorded_at = now() - interval '8 days' "
                    "WHERE change_id = ANY(:old)"
                ),
                {"old": [change(n).change_id for n in range(10, 20)]},
            )
        recorded = await rows(
            db,
            "SELECT recorded_at > now() - interval '1 hour' FROM score_changes "
            "WHERE change_id = :c",
            c=change(0).change_id,
        )
        assert recorded == [(True,)]  # from before the column: the migration's time

        ledger = Retention("score_changes", "recorded_at", WEEK)
        sweeper = RetentionSweeper("test", db, [ledger], SETTINGS)
        assert await sweeper.sweep() == {"score_changes": 10}
        kept = await rows(db, "SELECT change_id FROM score_changes")
        assert {c for (c,) in kept} == {change(n).change_id for n in range(10)}
        assert await index_is_valid(db, "score_changes_by_time")

        # Within the window, the ledger still makes a change count once.
        async with db.transaction() as session:
            again = await leaderboard_store.apply(session, [change(n) for n in range(10)])
        assert again == []
        assert await rows(db, "SELECT seconds, nights FROM scores") == [(20 * 3600, 20)]
    finally:
        await db.dispose()


async def test_analytics_sessions_sweep_has_an_index(blank_database):
    db = await migrated(blank_database, "analytics")
    try:
        assert await index_is_valid(db, "sessions_by_end")
    finally:
        await db.dispose()


async def test_sweepers_at_once_share_the_work(blank_database):
    first = await migrated(blank_database, "sleep")
    second = Database(blank_database)
    try:
        await age_processed_events(first, ages(old=300, young=40))
        retention = SETTINGS.processed_events_retention()
        sweepers = [RetentionSweeper("test", db, [retention], SETTINGS) for db in (first, second)]
        done = await asyncio.gather(*(s.sweep() for s in sweepers))
        assert sum(d["processed_events"] for d in done) == 300
        assert len(await rows(first, "SELECT 1 FROM processed_events")) == 40
    finally:
        await second.dispose()
        await first.dispose()


async def test_the_sweeper_runs_on_its_timer(sleep_db):
    await age_processed_events(sleep_db, ages(old=20, young=5))
    sweeper = RetentionSweeper("test", sleep_db, [SETTINGS.processed_events_retention()], SETTINGS)
    task = asyncio.create_task(sweeper.run())
    try:

        async def swept() -> bool:
            return len(await rows(sleep_db, "SELECT 1 FROM processed_events")) == 5

        await eventually_async(swept, timeout=10, what="the timer swept the old rows")
    finally:
        sweeper.stop()
        await asyncio.wait_for(task, 10)


# -- a consumer in the window ----------------------------------------------------------------


def publish(bootstrap: str, topic: str, events, headers=None) -> None:
    producer = Producer({**kafka_security(), "bootstrap.servers": bootstrap})
    for event in events:
        producer.produce(topic, key=b"u1", value=event.SerializeToString(), headers=headers)
    assert producer.flush(30) == 0


async def test_an_event_handed_again_within_the_window_is_still_a_duplicate(
    sleep_db, settings, new_topic
):
    topic, bootstrap = new_topic("retention", dead_letters=True), settings.kafka.bootstrap_servers
    async with sleep_db.transaction() as session:
        await session.execute(text("CREATE TABLE applied (event_id text)"))

    async def record(env, _payload, session) -> None:
        await session.execute(text("INSERT INTO applied VALUES (:id)"), {"id": env.event_id})

    group = unique("group")
    subscription = Subscription(group, (topic,), {user_events_pb2.CelebrityStatusChanged: record})
    events = [
        envelope(user_events_pb2.CelebrityStatusChanged(user_id="u1", follower_count=n), "u1", "t")
        for n in range(3)
    ]
    publish(bootstrap, topic, events)
    runner = ConsumerRunner(sleep_db, bootstrap, subscription)
    await run_until(runner, lambda: runner.applied == 3)

    # Some records are older than the retention (another group's, from long ago); the sweep
    # takes those and leaves this group's, applied a moment ago.
    await age_processed_events(sleep_db, ages(old=5, young=0))
    sweeper = RetentionSweeper("test", sleep_db, [SETTINGS.processed_events_retention()], SETTINGS)
    assert await sweeper.sweep() == {"processed_events": 5}

    # Kafka hands the events again (a consumer that died before committing, an outbox relay
    # that published twice): within the window, each is recognised.
    publish(bootstrap, topic, events)
    again = ConsumerRunner(sleep_db, bootstrap, subscription)
    await run_until(again, lambda: again.skipped == 3)
    assert again.applied == 0

    # A dead letter re-driven for another group is skipped by this one without any record of
    # it (the records may be long swept by then); re-driven for this group, it is applied.
    late = envelope(
        user_events_pb2.CelebrityStatusChanged(user_id="u1", follower_count=9), "u1", "t"
    )
    publish(bootstrap, topic, [late], headers=[(REDRIVEN_FOR_HEADER, b"someone.else")])
    publish(bootstrap, topic, [late], headers=[(REDRIVEN_FOR_HEADER, group.encode())])
    third = ConsumerRunner(sleep_db, bootstrap, subscription)
    await run_until(third, lambda: third.applied == 1 and third.skipped == 1)
    applied = await rows(sleep_db, "SELECT event_id FROM applied")
    assert sorted(e for (e,) in applied) == sorted(e.event_id for e in [*events, late])
