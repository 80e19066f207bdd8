"""The consumer runners on real Kafka and PostgreSQL: once-only effects, retries, dead letters."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from opentelemetry import trace
from sqlalchemy import text
from zentry.events.v1 import envelope_pb2, user_events_pb2

from services.kit import deadletters, erasure, telemetry
from services.kit.addresses import kafka_security
from services.kit.consumer import BatchSubscription, ConsumerRunner, Subscription
from services.kit.db import Database
from services.kit.events import envelope
from services.kit.replay import ReplayRefused, replay
from tests.support import run_until, unique


@pytest.fixture
async def db(scratch_database):
    database = Database(scratch_database)
    async with database.transaction() as session:
        await session.execute(text("CREATE TABLE applied (event_id text, follower_count bigint)"))
    yield database
    await database.dispose()


def publish(bootstrap: str, topic: str, values: list[bytes], headers=None) -> None:
    producer = Producer({**kafka_security(), "bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, key=b"u1", value=value, headers=headers)
    assert producer.flush(30) == 0


def event(n: int) -> envelope_pb2.EventEnvelope:
    return envelope(
        user_events_pb2.CelebrityStatusChanged(user_id="u1", follower_count=n), "u1", "test"
    )


async def record(env, payload, session) -> None:
    await session.execute(
        text("INSERT INTO applied VALUES (:id, :n)"),
        {"id": env.event_id, "n": payload.follower_count},
    )


async def applied(db: Database) -> list[tuple[str, int]]:
    async with db.transaction() as session:
        return [tuple(r) for r in await session.execute(text("SELECT * FROM applied ORDER BY 2"))]


def committed_offset(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({**kafka_security(), "bootstrap.servers": bootstrap, "group.id": group})
    offset = consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    consumer.close()
    return offset


async def test_each_event_takes_effect_once_under_redelivery_and_replay(
    db, settings, new_topic, kafka_admin
):
    topic, bootstrap = new_topic("consume", dead_letters=True), settings.kafka.bootstrap_servers
    events = [event(n) for n in range(20)]
    # The outbox may publish an event twice (a relay killed after Kafka's ack): event 3 is doubled.
    publish(bootstrap, topic, [e.SerializeToString() for e in events[:4] + events[3:]])
    subscription = Subscription(
        unique("group"), (topic,), {user_events_pb2.CelebrityStatusChanged: record}
    )
    runner = ConsumerRunner(db, bootstrap, subscription)
    await run_until(runner, lambda: runner.applied + runner.skipped == 21)
    assert runner.applied == 20 and runner.skipped == 1
    assert committed_offset(bootstrap, subscription.group, topic) == 21

    # Replay from the beginning (the group's offsets are gone): nothing applies twice.
    kafka_admin.delete_consumer_groups([subscription.group])[subscription.group].result(timeout=30)
    replay = ConsumerRunner(db, bootstrap, subscription)
    await run_until(replay, lambda: replay.skipped == 21)
    assert replay.applied == 0
    assert await applied(db) == [(e.event_id, n) for n, e in enumerate(events)]


async def test_a_fetch_is_applied_in_one_transaction_that_a_deletion_ends(db, settings, new_topic):
    """Handlers per event type, a batch a transaction; an event naming a user after their
    UserDeleted in the same fetch sees the deletion (its batch began after it)."""
    topic, bootstrap = new_topic("consume", dead_letters=True), settings.kafka.bootstrap_servers
    deleted = user_events_pb2.UserDeleted(user_id="u1")
    events = [event(n) for n in range(5)] + [envelope(deleted, "u1", "test"), event(5)]
    other = user_events_pb2.CelebrityStatusChanged(user_id="u2", follower_count=6)
    events.append(envelope(other, "u2", "test"))
    publish(bootstrap, topic, [e.SerializeToString() for e in events])

    async def forget(env, payload, session) -> None:
        await erasure.record(session, payload.user_id)

    subscription = Subscription(
        unique("group"),
        (topic,),
        {user_events_pb2.CelebrityStatusChanged: record, user_events_pb2.UserDeleted: forget},
    )
    runner = ConsumerRunner(db, bootstrap, subscription)
    await run_until(runner, lambda: runner.applied + runner.skipped == len(events))
    assert [n for _, n in await applied(db)] == [0, 1, 2, 3, 4, 6], "5 names the deleted u1"
    assert 2 <= runner.batches < len(events), "batches of events, ended by the deletion"


async def test_a_failing_handler_is_retried_then_its_event_parked_with_reasons(
    db, settings, new_topic
):
    topic, bootstrap = new_topic("consume", dead_letters=True), settings.kafka.bootstrap_servers
    events = [event(n) for n in range(3)]
    publish(
        bootstrap,
        topic,
        [
            events[0].SerializeToString(),
            b"\x00not an envelope",
            events[1].SerializeToString(),
            events[2].SerializeToString(),
        ],
    )
    attempts: dict[int, int] = {}

    async def flaky(env, payload, session) -> None:
        n = payload.follower_count
        attempts[n] = attempts.get(n, 0) + 1
        await record(env, payload, session)  # written, then rolled back when we raise
        if n == 1:
            raise ValueError("event 1 can never be applied")
        if n == 2 and attempts[n] < 7:
            raise ConnectionError("an outage, longer than max_attempts: works on the 7th try")

    group = unique("group")
    runner = ConsumerRunner(
        db,
        bootstrap,
        Subscription(group, (topic,), {user_events_pb2.CelebrityStatusChanged: flaky}),
        max_attempts=4,
        first_backoff=0.01,
        max_backoff=0.05,
    )
    await run_until(runner, lambda: runner.applied == 2 and runner.dead_lettered == 2)
    # Event 1 fails its batch 4 times, then itself 4 times alone; event 2 is not to blame
    # for its outage however long it lasts (7 tries, 6 over max_attempts).
    assert attempts[2] == 7, "an outage is never the message's fault"
    assert attempts[1] == 4 or attempts[1] == 8, "alone, or its batch's and then alone"
    assert [n for _, n in await applied(db)] == [0, 2], "no trace of the failed attempts"
    assert committed_offset(bootstrap, group, topic) == 4

    parked = Consumer(
        {
            **kafka_security(),
            "bootstrap.servers": bootstrap,
            "group.id": unique("dlt-reader"),
            "auto.offset.reset": "earliest",
        }
    )
    parked.subscribe([f"{topic}.dlt"])
    dead = []
    deadline = time.monotonic() + 20
    while len(dead) < 2 and time.monotonic() < deadline:
        message = parked.poll(0.5)
        if message is not None and not message.error():
            dead.append(message)
    parked.close()
    assert [m.value() for m in dead] == [b"\x00not an envelope", events[1].SerializeToString()]
    undecodable, failing = (dict(m.headers()) for m in dead)
    assert undecodable["zentry-dlt-attempts"] == b"1"
    assert failing["zentry-dlt-group"] == group.encode()
    assert failing["zentry-dlt-attempts"] == b"4"
    assert b"event 1 can never be applied" in failing["zentry-dlt-error"]
    assert failing["zentry-dlt-topic"] == topic.encode()
    assert failing["zentry-dlt-offset"] == b"2"


async def test_the_handler_runs_in_the_producers_trace(db, settings, new_topic):
    topic, bootstrap = new_topic("consume", dead_letters=True), settings.kafka.bootstrap_servers
    telemetry.configure("test", "test", otlp_endpoint="")
    with telemetry.tracer().start_as_current_span("produce") as span:
        trace_id = span.get_span_context().trace_id
        publish(bootstrap, topic, [event(0).SerializeToString()], headers=telemetry.kafka_headers())
    seen = []

    async def remember(env, payload, session) -> None:
        seen.append(trace.get_current_span().get_span_context().trace_id)

    runner = ConsumerRunner(
        db,
        bootstrap,
        Subscription(unique("group"), (topic,), {user_events_pb2.CelebrityStatusChanged: remember}),
    )
    await run_until(runner, lambda: runner.applied == 1)
    assert seen == [trace_id]


async def test_the_batch_runner_applies_a_batch_at_once_and_parks_only_its_poison(
    db, settings, new_topic
):
    topic, bootstrap = new_topic("batch", dead_letters=True), settings.kafka.bootstrap_servers
    events = [event(n) for n in range(10)]
    publish(bootstrap, topic, [e.SerializeToString() for e in events])
    calls: list[int] = []
    outages = {"left": 2}

    async def apply_all(batch, session) -> None:
        calls.append(len(batch))
        if outages["left"]:
            outages["left"] -= 1
            raise ConnectionError("PostgreSQL restarting")  # an outage: retried, never parked
        for env, payload in batch:
            if payload.follower_count == 7:
                raise ValueError("event 7 can never be applied")
            await record(env, payload, session)

    group = unique("group")
    runner = ConsumerRunner(
        db,
        bootstrap,
        BatchSubscription(group, (topic,), (user_events_pb2.CelebrityStatusChanged,), apply_all),
        max_attempts=2,
        first_backoff=0.01,
        max_backoff=0.05,
    )
    await run_until(runner, lambda: runner.applied == 9 and runner.dead_lettered == 1)
    assert [n for _, n in await applied(db)] == [0, 1, 2, 3, 4, 5, 6, 8, 9]
    assert max(calls) > 1 and calls[-1] == 1, "whole batches first, then one by one"
    assert committed_offset(bootstrap, group, topic) == 10


async def test_a_replay_that_cannot_start_its_groups_over_empties_nothing(settings, db, new_topic):
    """A consumer joins after the replay checked the group: deleting the group fails, and
    the read model must still be whole (no consumer may resume old offsets over empty tables)."""
    topic, group = new_topic("replay"), unique("replay-group")
    publish(settings.kafka.bootstrap_servers, topic, [event(1).SerializeToString()])
    late = Consumer(
        {
            **kafka_security(),
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": group,
        }
    )
    wiped = []

    def progress(line: str) -> None:
        if line == "starting the consumer groups over":  # the late consumer joins now
            late.subscribe([topic])
            deadline = time.monotonic() + 30
            while not late.assignment() and time.monotonic() < deadline:
                late.poll(0.2)

    async def wipe() -> None:
        wiped.append(True)

    try:
        with pytest.raises(ReplayRefused, match="running member now"):
            await replay(
                settings.kafka.bootstrap_servers, {group: topic}, wipe, lambda: [], progress
            )
    finally:
        late.close()
    assert wiped == []


async def test_parked_events_are_listed_and_re_driven_once_in_order(db, settings, new_topic):
    topic, bootstrap = new_topic("redrive", dead_letters=True), settings.kafka.bootstrap_servers
    producer = Producer({**kafka_security(), "bootstrap.servers": bootstrap})
    for n, user in [(0, b"ada"), (1, b"bob"), (2, b"cy"), (3, b"bob"), (4, b"dan")]:
        producer.produce(topic, key=user, value=event(n).SerializeToString())
    assert producer.flush(30) == 0
    broken = {1, 2}

    async def until_fixed(env, payload, session) -> None:
        if payload.follower_count in broken:
            raise ValueError(f"event {payload.follower_count}: a bug, fixed later")
        await record(env, payload, session)

    group = unique("group")
    subscription = Subscription(
        group, (topic,), {user_events_pb2.CelebrityStatusChanged: until_fixed}
    )
    runner = ConsumerRunner(db, bootstrap, subscription, max_attempts=2, first_backoff=0.01)
    await run_until(runner, lambda: runner.applied == 3 and runner.dead_lettered == 2)

    parked = deadletters.parked_events(bootstrap, group)[f"{topic}.dlt"]
    assert [(p.key, p.origin_offset, p.attempts) for p in parked] == [(b"bob", 1, 2), (b"cy", 2, 2)]
    assert "event 1: a bug" in parked[0].error

    broken.clear()  # the cause is fixed
    said: list[str] = []
    refused = deadletters.redrive(
        bootstrap, group, out_of_order=False, dry_run=False, say=said.append
    )
    assert refused == -1 and "1 later event(s) of the same user" in said[0]  # bob's event 3
    assert deadletters.redrive(bootstrap, group, out_of_order=True, dry_run=False) == 2
    assert deadletters.redrive(bootstrap, group, out_of_order=True, dry_run=False) == 0

    again = ConsumerRunner(db, bootstrap, subscription, max_attempts=2, first_backoff=0.01)
    await run_until(again, lambda: again.applied == 2)
    assert [n for _, n in await applied(db)] == [0, 1, 2, 3, 4], "each once"
