"""A scratch topic, database and Redis database for an ingestion benchmark; gone afterwards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from infra.config import Settings
from infra.servers.postgres import scratch_database

BENCH_REDIS_DB = 10  # the tests use 11 to 13


@dataclass(frozen=True)
class Scratch:
    topics: tuple[str, ...]  # 6 partitions each, like the domain topics, each with its .dlt
    dsn: str  # an empty database
    redis_url: str

    @property
    def topic(self) -> str:
        return self.topics[0]


@contextmanager
def scratch(settings: Settings, name: str, topics: int = 1) -> Iterator[Scratch]:
    """Topics `name`, `name-2`, ... (`topics` of them), a database and a Redis database."""
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    names = tuple([name, *(f"{name}-{n}" for n in range(2, topics + 1))])
    made = [t for n in names for t in (n, f"{n}.dlt")]
    new = [NewTopic(t, 1 if t.endswith(".dlt") else 6, 1) for t in made]
    for future in admin.create_topics(new).values():
        future.result(timeout=30)
    try:
        with scratch_database(settings.postgres, name.replace("-", "_")) as dsn:
            yield Scratch(names, dsn, settings.redis.url(BENCH_REDIS_DB))
    finally:
        for future in admin.delete_topics(made).values():
            future.result(timeout=30)


async def drain(runner, expected: int, what: str, timeout: float = 600) -> float:
    """Run `runner` until it has handled `expected` events; the seconds that took."""
    started = time.monotonic()
    task = asyncio.create_task(runner.run())
    while runner.applied + runner.dead_lettered < expected:
        if task.done():
            task.result()
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: only {runner.applied} of {expected} in {timeout:.0f} s")
        await asyncio.sleep(0.05)
    seconds = time.monotonic() - started
    runner.stop()
    await task
    return seconds


def produce_all(bootstrap: str, topic: str, messages) -> None:
    """Publish (key, value) pairs as fast as Kafka takes them."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000})
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("Kafka did not take every bench event")
