"""The transactional outbox against real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import Consumer
from sqlalchemy import func, select, text
from zentry.events.v1 import envelope_pb2, user_events_pb2

from services.kit.addresses import kafka_security
from services.kit.db import Database
from services.kit.outbox import Outbox, OutboxRelay
from services.kit.tables import outbox
from tests.support import eventually_async, unique


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list:
    """Every message on `topic` from the start, once `expected` have arrived (or the deadline)."""
    consumer = Consumer(
        {
            **kafka_security(),
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages, idle_polls = [], 0

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (len(messages) < expected or idle_polls < 4):
        message = consumer.poll(0.5)
        if message is None:
            idle_polls += 1 if len(messages) >= expected else 0
            continue
        if not message.error():
            messages.append(message)
    consumer.close()
    return messages


async def write_events(db: Database, box: Outbox, count: int) -> list[str]:
    ids = []
    for n in range(count):
        async with db.transaction() as session:
            event = user_events_pb2.CelebrityStatusChanged(user_id=f"u{n % 7}", follower_count=n)
            ids.append(await box.add(session, event, subject_user_id=f"u{n % 7}"))
    return ids


@pytest.fixture
async def db(scratch_database):
    database = Database(scratch_database)
    yield database
    await database.dispose()


async def test_a_rolled_back_transaction_publishes_nothing(db, settings, new_topic):
    topic = new_topic("outbox")
    box = Outbox(topic, producer="test")
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE IF NOT EXISTS notes (body text)"))
            await session.execute(text("INSERT INTO notes VALUES ('kept?')"))
            await box.add(session, user_events_pb2.CelebrityStatusChanged(user_id="u1"), "u1")
            raise RuntimeError("the change fails after the event was added")
    relay = OutboxRelay(db, settings.kafka.bootstrap_servers, client_id="test-relay")
    assert await relay.relay_batch() == 0
    assert read_all(settings.kafka.bootstrap_servers, topic, expected=0, timeout=3) == []


async def test_each_event_reaches_kafka_exactly_once_across_a_relay_restart(
    db, settings, new_topic
):
    topic = new_topic("outbox")
    ids = await write_events(db, Outbox(topic, producer="test"), 300)
    bootstrap = settings.kafka.bootstrap_servers

    first = OutboxRelay(db, bootstrap, client_id="relay-1", batch_size=25)
    task = asyncio.create_task(first.run())
    while first.published < 100:
        await asyncio.sleep(0.01)
    first.stop()  # mid-way: most events are still waiting
    await asyncio.wait_for(task, 30)
    assert first.published < 300

    second = OutboxRelay(db, bootstrap, client_id="relay-2", batch_size=25)
    task = asyncio.create_task(second.run())
    for _ in range(300):
        async with db.transaction() as session:
            if (await session.execute(select(func.count()).select_from(outbox))).scalar() == 0:
                break
        await asyncio.sleep(0.1)
    second.stop()
    await asyncio.wait_for(task, 30)

    messages = read_all(bootstrap, topic, expected=300)
    published = [envelope_pb2.EventEnvelope.FromString(m.value()).event_id for m in messages]
    assert published == ids, "every event once, in the order written"
    assert first.published + second.published == 300
    first_message = messages[0]
    envelope = envelope_pb2.EventEnvelope.FromString(first_message.value())
    assert first_message.key() == envelope.subject_user_id.encode()
    assert envelope.event_type == "zentry.events.v1.CelebrityStatusChanged"
    assert dict(first_message.headers())["event-type"] == envelope.event_type.encode()


async def test_two_relays_at_once_still_publish_once_in_order(db, settings, new_topic):
    topic = new_topic("outbox")
    ids = await write_events(db, Outbox(topic, producer="test"), 200)
    relays = [
        OutboxRelay(db, settings.kafka.bootstrap_servers, client_id=f"r{n}", batch_size=10)
        for n in range(2)
    ]
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    while sum(relay.published for relay in relays) < 200:
        await asyncio.sleep(0.05)
    for relay in relays:
        relay.stop()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert sorted(relay.published for relay in relays)[0] == 0, "only the lock holder publishes"
    messages = read_all(settings.kafka.bootstrap_servers, topic, expected=200)
    assert [envelope_pb2.EventEnvelope.FromString(m.value()).event_id for m in messages] == ids


async def test_an_idle_relay_is_woken_by_the_commit_not_by_a_poll(db, settings, new_topic):
    """Found by the write path's profile: an idle relay polled every 100 ms. It now listens:
    with a fallback look only every minute, a committed event still goes out at once."""
    topic = new_topic("outbox")
    box = Outbox(topic, producer="test")
    relay = OutboxRelay(db, settings.kafka.bootstrap_servers, client_id="listener", idle_wait=60)
    task = asyncio.create_task(relay.run())
    first = await write_events(db, box, 1)
    await eventually_async(lambda: relay.published == 1, timeout=20, what="the first is out")
    await asyncio.sleep(0.5)  # idle now: listening, its next look a minute away
    second = await write_events(db, box, 1)
    await eventually_async(lambda: relay.published == 2, timeout=20, what="woken by the commit")
    relay.stop()  # seen when the wait ends: a notification ends it at once
    await write_events(db, box, 1)
    await asyncio.wait_for(task, 30)
    messages = read_all(settings.kafka.bootstrap_servers, topic, expected=2)
    assert [envelope_pb2.EventEnvelope.FromString(m.value()).event_id for m in messages] == [
        *first,
        *second,
    ]


async def test_a_relay_keeps_up_with_commits_arriving_while_it_publishes(db, settings, new_topic):
    """Found in review: every notification read in one go cost a pause of its own, so under a
    steady stream of commits the pauses grew each round and publishing fell behind."""
    topic = new_topic("outbox")
    box = Outbox(topic, producer="test")
    relay = OutboxRelay(db, settings.kafka.bootstrap_servers, client_id="steady", idle_wait=60)
    task = asyncio.create_task(relay.run())
    try:
        writers = [write_events(db, box, 60) for _ in range(8)]  # 480 commits, 8 at a time
        await asyncio.gather(*writers)
        await eventually_async(
            lambda: relay.published == 480, timeout=15, what="every committed event is out"
        )
        # Their notifications pile up while the batches go out; the next event must not
        # wait behind a pause for each of them.
        await write_events(db, box, 1)
        await eventually_async(
            lambda: relay.published == 481, timeout=10, what="the next event is out"
        )
    finally:
        relay.stop()
        await write_events(db, box, 1)  # wakes it, so that it sees stop()
        await asyncio.wait_for(task, 30)


async def test_a_relay_that_cannot_reach_kafka_reports_what_waits_and_for_how_long(db, new_topic):
    """What ZentryOutboxNotDraining watches: the rows waiting and the age of the oldest."""
    from infra.processes import free_port
    from services.kit import metrics

    box = Outbox(new_topic("outbox"), producer="test")
    await write_events(db, box, 3)
    async with db.transaction() as session:
        await session.execute(
            text("UPDATE outbox SET created_at = created_at - interval '90 seconds'")
        )
    service = unique("stuck")
    relay = OutboxRelay(
        db, f"127.0.0.1:{free_port()}", client_id="stuck", service=service, delivery_timeout=1
    )
    task = asyncio.create_task(relay.run())
    waiting, oldest = metrics.OUTBOX_WAITING.labels(service), metrics.OUTBOX_OLDEST.labels(service)
    try:
        await eventually_async(
            lambda: waiting._value.get() == 3, timeout=20, what="the waiting rows reported"
        )
        assert 90 <= oldest._value.get() < 300
        assert relay.published == 0
    finally:
        relay.stop()
        await asyncio.wait_for(task, 30)
