"""Small helpers shared by the test tiers: unique names, waiting with a deadline, topic tails."""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import Consumer, TopicPartition
from zentry.events.v1 import envelope_pb2

from services.kit.addresses import kafka_security

T = TypeVar("T")


async def run_until(runner, done: Callable[[], bool], timeout: float = 40) -> None:
    """Run a consumer runner until `done()` (or `timeout` seconds), then stop it; fail unless
    done."""
    task = asyncio.create_task(runner.run())
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline and not task.done():
        await asyncio.sleep(0.05)
    runner.stop()
    await asyncio.wait_for(task, 30)
    assert done(), "the runner did not get there before the deadline"


def unique(prefix: str) -> str:
    """A name no other test (or earlier run) uses, so tests isolate themselves."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def eventually(check: Callable[[], T], *, timeout: float, what: str, interval: float = 0.2) -> T:
    """Call `check` until it returns a truthy value; fail the test with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout:.0f}s: {what}")
        time.sleep(interval)


async def eventually_async(
    check: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05
):
    """`eventually` inside an event loop: `check` may return an awaitable, and waiting
    lets the loop's other tasks (consumers, rebuilds) run."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout:.0f}s: {what}")
        await asyncio.sleep(interval)


class TopicTail:
    """Reads what is published on a topic from now on (every partition, from its end)."""

    def __init__(self, bootstrap: str, topic: str):
        self._consumer = Consumer(
            {
                **kafka_security(),
                "bootstrap.servers": bootstrap,
                "group.id": unique("tail"),
                "enable.auto.commit": False,
            }
        )
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        start = []
        for p in partitions:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            start.append(TopicPartition(topic, p, high))
        self._consumer.assign(start)
        self.keys: dict[str, str] = {}

    def read(
        self, until, timeout: float = 20, settle: float = 0.0
    ) -> list[envelope_pb2.EventEnvelope]:
        """Events until `until(events)` holds, then `settle` seconds more (to catch extras).

        `keys` maps each event id read to its Kafka message key.
        """
        events, deadline = [], time.monotonic() + timeout
        settled_at = None
        while time.monotonic() < deadline:
            if settled_at is None and until(events):
                settled_at = time.monotonic() + settle
            if settled_at is not None and time.monotonic() >= settled_at:
                break
            message = self._consumer.poll(0.2)
            if message is not None and not message.error():
                event = envelope_pb2.EventEnvelope.FromString(message.value())
                self.keys[event.event_id] = (message.key() or b"").decode()
                events.append(event)
        self._consumer.close()
        return events


def unpack(event: envelope_pb2.EventEnvelope, cls):
    payload = cls()
    assert event.payload.Unpack(payload)
    return payload
