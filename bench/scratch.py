"""A scratch topic, database and Redis database for an ingestion benchmark; gone afterwards.

An ingestion is measured with one runner in this process (`drain`), and with
runners in processes of their own in one consumer group (`drain_in_processes`),
as production runs a consumer group: both cores at work.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.cpu import CpuMeter, cpu_roots, per_event
from infra import mesh
from infra.config import Settings
from infra.servers.postgres import scratch_database
from services.kit.addresses import kafka_security

BENCH_REDIS_DB = 10  # the tests use 11 to 13
#: Runner processes sharing a group in `drain_in_processes`: as many as `make dev` runs.
PROCESSES = mesh.DEV.consumers


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
    admin = AdminClient({**kafka_security(), "bootstrap.servers": settings.kafka.bootstrap_servers})
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
    producer = Producer(
        {
            **kafka_security(),
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.size": 1_000_000,
        }
    )
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


#: Makes a runner, and what closes its clients, in a process of its own: a module-level
#: function, given the arguments `drain_in_processes` was: (bootstrap, topic, group, ...).
Build = Callable[..., Awaitable[tuple[object, Callable[[], Awaitable[None]]]]]


@dataclass(frozen=True)
class Ingestion:
    """An ingestion measured twice: `expected` events by one runner in this process (on the
    place's first topic), then `others` more by PROCESSES runner processes (its second)."""

    expected: int
    others: int
    batches: int
    seconds: float
    cpu: dict[str, float]
    processes_seconds: float
    processes_cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return self.expected / self.seconds

    @property
    def processes_rate(self) -> float:
        return self.others / self.processes_seconds

    def figures(self) -> dict:
        return {
            "events": self.expected,
            "batches": self.batches,
            "seconds": round(self.seconds, 2),
            "events_per_s": round(self.rate),
            "cpu_ms_per_event": per_event(self.cpu, self.expected),
            "processes": PROCESSES,
            "processes_events_per_s": round(self.processes_rate),
            "processes_cpu_ms_per_event": per_event(self.processes_cpu, self.others),
        }


async def ingest(
    settings: Settings,
    place: Scratch,
    build: Build,
    group_of: Callable[[str], str],
    expected: int,
    others: list[tuple[str, bytes]],
    what: str,
) -> Ingestion:
    """`expected` events already on the place's first topic, by one runner made by `build`;
    then `others`, published once PROCESSES runners share a group on its second topic."""

    def args(topic: str) -> tuple:
        bootstrap = settings.kafka.bootstrap_servers
        return (bootstrap, topic, group_of(topic), place.dsn, place.redis_url)

    print(f"bench {what}: one batch runner", flush=True)
    runner, seconds, cpu = await drain_alone(settings, build, args(place.topic), expected, what)
    print(f"bench {what}: as many more, {PROCESSES} runner processes", flush=True)
    both_s, both_cpu = await asyncio.to_thread(
        drain_in_processes, settings, build, args(place.topics[1]), others
    )
    return Ingestion(expected, len(others), runner.batches, seconds, cpu, both_s, both_cpu)


async def drain_alone(
    settings: Settings, build: Build, args: tuple, expected: int, what: str
) -> tuple[object, float, dict[str, float]]:
    """One runner made by `build(*args)` in this process: the runner, the seconds until it
    had applied `expected` events, and the CPU seconds it, PostgreSQL and Redis spent."""
    runner, close = await build(*args)
    meter = CpuMeter(cpu_roots(settings)).start()
    try:
        seconds = await drain(runner, expected, what)
    finally:
        cpu = meter.stop()
        await close()
    return runner, seconds, cpu


def drain_in_processes(
    settings: Settings, build: Build, args: tuple, messages: list[tuple[str, bytes]]
) -> tuple[float, dict[str, float]]:
    """PROCESSES runners of one group, each made by `build(*args)` in a process of its own.

    Once the group has them all (each with partitions), `messages` (key, value)
    go onto its topic; the figure is the seconds from then until the runners
    have applied them all between them, with the CPU seconds the runners
    (together), PostgreSQL and Redis spent meanwhile.
    """
    bootstrap, topic = args[:2]
    spawn = multiprocessing.get_context("spawn")  # librdkafka's threads do not survive a fork
    stop = spawn.Event()
    counters = [spawn.Value("q", 0) for _ in range(PROCESSES)]
    children = [
        spawn.Process(target=_child, args=(build, args, counter, stop), daemon=True)
        for counter in counters
    ]
    for child in children:
        child.start()
    servers = {k: v for k, v in cpu_roots(settings).items() if k != "runner"}
    try:
        _until_all_members(args, children, timeout=120)
        meter = CpuMeter({**{f"runner {c.pid}": c.pid for c in children}, **servers}).start()
        started = time.monotonic()
        produce_all(bootstrap, topic, messages)
        while sum(c.value for c in counters) < len(messages):
            if any(not c.is_alive() for c in children):
                raise RuntimeError("a runner process ended early; its output says why")
            if time.monotonic() - started > 600:
                raise TimeoutError(f"only {sum(c.value for c in counters)} of {len(messages)}")
            time.sleep(0.02)
        seconds = time.monotonic() - started
        spent = meter.stop()
    finally:
        stop.set()
        for child in children:
            child.join(30)
            if child.is_alive():
                child.kill()
    cpu = {name: t for name, t in spent.items() if not name.startswith("runner ")}
    return seconds, {"runners": round(sum(spent.values()) - sum(cpu.values()), 2), **cpu}


def _until_all_members(args: tuple, children, timeout: float) -> None:
    """Until the group is stable with a member for each child, each holding partitions."""
    bootstrap, _topic, group = args[:3]
    admin = AdminClient({**kafka_security(), "bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(not c.is_alive() for c in children):
            raise RuntimeError("a runner process ended early; its output says why")
        described = admin.describe_consumer_groups([group])[group].result(timeout=15)
        members = [m for m in described.members if m.assignment.topic_partitions]
        if described.state.name == "STABLE" and len(members) == len(children):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{group}: {len(children)} members did not join in {timeout:.0f} s")


def _child(build: Build, args: tuple, applied, stop) -> None:
    asyncio.run(_run_child(build, args, applied, stop))


async def _run_child(build: Build, args: tuple, applied, stop) -> None:
    runner, close = await build(*args)
    task = asyncio.create_task(runner.run())
    while not stop.is_set() and not task.done():
        applied.value = runner.applied + runner.dead_lettered
        await asyncio.sleep(0.02)
    applied.value = runner.applied + runner.dead_lettered
    runner.stop()
    await task
    await close()
