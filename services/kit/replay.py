"""Rebuilding a read model from Kafka's first event, with the handlers the live consumers run.

The domain topics keep every event, so a service can throw its read models
away and apply everything again (`python -m services.<name>.replay`):

1. refuse while any of its consumers runs (a group with members), as Kafka's
   own offset reset does: stop those consumers first;
2. note where each topic ends now;
3. delete the consumer groups, so they start again from the beginning; a
   group that gained a member meanwhile refuses, and nothing was emptied;
4. let the service empty its read models (`wipe`). In this order a failure
   at any step leaves no consumer to resume at old offsets over empty
   tables: at worst the groups start over on a full read model. Then run the
   replay again, rather than the consumers: the groups' records of what they
   applied are kept only for a while (services.kit.retention), so events
   older than that would be applied twice;
5. run the service's consumer runners until their committed offsets reach the
   ends noted in 2, then stop them. The live consumers, started again,
   continue from there.

A service declares its replay as a `ServiceReplay`: the read models it empties
and the runners that fill them again (`ReadModels`); the kit does the rest,
its command line included.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from redis.asyncio import Redis
from sqlalchemy import text

from services.kit import redis_client
from services.kit.addresses import RedisAddress, kafka_security
from services.kit.consumer import ConsumerRunner
from services.kit.db import Database, migrate
from services.kit.settings import ConfigError

S = TypeVar("S")


class ReplayRefused(Exception):
    """The replay would race a running consumer; the message says what to stop."""


@dataclass(frozen=True)
class ReplayReport:
    events: int
    seconds: float


@dataclass(frozen=True)
class ReadModels:
    """What a service's replay empties, and the consumer runners that fill it again.

    Each runner's group starts over from the first event of the one topic it reads.
    """

    runners: list[ConsumerRunner]
    tables: list[str]
    #: The Redis keys to delete (a SCAN pattern), if the read models keep any there.
    keys: str | None = None


@dataclass(frozen=True)
class ServiceReplay(Generic[S]):
    """A service's replay: `await it(settings, dsn=, redis_url=, bootstrap=, **names)`.

    `read_models(settings, db, redis, bootstrap, **names)` builds the service's
    `ReadModels` over the replay's clients; `names` are passed on from the call
    (tests name topics and groups of their own). `main()` is
    `python -m services.<service>.replay`, whose help is `doc`.
    """

    service: str
    doc: str
    load_settings: Callable[[], S]
    migrations: Path
    read_models: Callable[..., ReadModels]
    #: What the report adds: when what the replay leaves out comes back.
    afterwards: str

    async def __call__(
        self,
        settings: S,
        *,
        dsn: str,
        redis: RedisAddress | str,
        bootstrap: str,
        progress: Callable[[str], None] = lambda _line: None,
        **names: Any,
    ) -> ReplayReport:
        """Raises ReplayRefused while one of the service's consumers runs; see the module."""
        async with stores(dsn, redis, self.migrations) as (db, redis):
            models = self.read_models(settings, db, redis, bootstrap, **names)
            topics = {}
            for runner in models.runners:
                (topics[runner.group],) = runner.topics  # a group replays one topic, no more
            # What runners noted in processed_events is forgotten, or they would skip it all.
            forgotten = [r.group for r in models.runners if r.keeps_processed_events]
            return await replay(
                bootstrap,
                topics,
                wipe=lambda: empty(db, redis, models.tables, models.keys, forgotten),
                runners=lambda: models.runners,
                progress=progress,
            )

    def main(self) -> int:
        """The command: settings, the replay, a report; exits 1 when refused, 2 misconfigured."""
        argparse.ArgumentParser(
            prog=f"python -m services.{self.service}.replay",
            description=self.doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        ).parse_args()
        try:
            settings = self.load_settings()
        except ConfigError as error:
            print(f"configuration error: {error}", file=sys.stderr)
            return 2
        service = settings.service
        try:
            report = asyncio.run(
                self(
                    settings,
                    # PostgreSQL itself: a one-off job, whose migrations take a session lock.
                    dsn=service.postgres_session_dsn,
                    redis=service.redis,
                    bootstrap=service.kafka_bootstrap,
                    progress=lambda line: print(f"replay: {line}", flush=True),
                )
            )
        except ReplayRefused as error:
            print(f"replay refused: {error}", file=sys.stderr)
            return 1
        rate = report.events / report.seconds if report.seconds else 0.0
        print(
            f"replay: {report.events} events applied in {report.seconds:.1f} s "
            f"({rate:.0f} events/s); {self.afterwards}"
        )
        return 0


async def replay(
    bootstrap: str,
    topics: dict[str, str],
    wipe: Callable[[], Awaitable[None]],
    runners: Callable[[], list[ConsumerRunner]],
    progress: Callable[[str], None] = lambda _line: None,
) -> ReplayReport:
    """`topics` maps each consumer group to the topic it reads; see the module's docstring."""
    admin = AdminClient({**kafka_security(), "bootstrap.servers": bootstrap})
    groups = list(topics)
    await asyncio.to_thread(_refuse_if_running, admin, groups)
    ends = await asyncio.to_thread(_end_offsets, bootstrap, topics)
    progress("starting the consumer groups over")
    await asyncio.to_thread(_delete_groups, admin, groups)
    progress("emptying the read models")
    await wipe()
    started = time.monotonic()
    running = runners()
    tasks = [asyncio.create_task(runner.run()) for runner in running]
    try:
        while not await asyncio.to_thread(_caught_up, admin, ends):
            for task in tasks:
                if task.done():
                    task.result()  # a runner that died: raise its error
            progress(f"{_handled(running)} events replayed")
            await asyncio.sleep(0.5)
    finally:
        for runner in running:
            runner.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    return ReplayReport(_handled(running), time.monotonic() - started)


async def empty(
    db: Database, redis: Redis, tables: list[str], key_pattern: str | None, groups=()
) -> None:
    """Truncate `tables`, forget what `groups` processed, and delete the keys matching (if any)."""
    async with db.transaction() as session:
        await session.execute(text(f"TRUNCATE {', '.join(tables)}"))
        if groups:
            await session.execute(
                text("DELETE FROM processed_events WHERE consumer = ANY(:groups)"),
                {"groups": list(groups)},
            )
    if key_pattern:
        await unlink_matching(redis, key_pattern)


async def unlink_matching(redis: Redis, pattern: str) -> None:
    """Delete every key matching `pattern`, a thousand at a time (SCAN, then UNLINK)."""
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await redis.unlink(*batch)
            batch.clear()
    if batch:
        await redis.unlink(*batch)


@asynccontextmanager
async def stores(
    dsn: str, redis: RedisAddress | str, migrations: Path
) -> AsyncIterator[tuple[Database, Redis]]:
    """The service's database (migrated) and Redis for the length of a replay."""
    await asyncio.to_thread(migrate, dsn, migrations)
    db, client = Database(dsn), redis_client.connect(redis)
    try:
        yield db, client
    finally:
        await client.aclose()
        await db.dispose()


def _handled(runners: list[ConsumerRunner]) -> int:
    return sum(r.applied + r.skipped + r.dead_lettered for r in runners)


def _refuse_if_running(admin: AdminClient, groups) -> None:
    for group in admin.describe_consumer_groups(list(groups)).values():
        try:
            description = group.result(timeout=15)
        except KafkaException:
            continue  # no such group yet
        if description.members:
            clients = ", ".join(sorted({m.client_id or m.host for m in description.members}))
            raise ReplayRefused(
                f"consumer group {description.group_id} has {len(description.members)} running "
                f"member(s) ({clients}); stop them, then replay"
            )


def _end_offsets(bootstrap: str, topics: dict[str, str]):
    """{group: [TopicPartition at the topic's current end]} for every partition."""
    consumer = Consumer(
        {**kafka_security(), "bootstrap.servers": bootstrap, "group.id": "replay-probe"}
    )
    try:
        ends = {}
        for group, topic in topics.items():
            metadata = consumer.list_topics(topic, timeout=15).topics[topic]
            if metadata.error is not None:
                raise ReplayRefused(f"topic {topic}: {metadata.error}")
            ends[group] = [
                TopicPartition(
                    topic,
                    p,
                    consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1],
                )
                for p in sorted(metadata.partitions)
            ]
        return ends
    finally:
        consumer.close()


def _delete_groups(admin: AdminClient, groups) -> None:
    for group, future in admin.delete_consumer_groups(list(groups)).items():
        try:
            future.result(timeout=15)
        except KafkaException as error:
            if "NON_EMPTY_GROUP" in str(error):
                raise ReplayRefused(
                    f"consumer group {group} has a running member now; stop it, then replay"
                ) from error
            if "GROUP_ID_NOT_FOUND" not in str(error):
                raise


def _caught_up(admin: AdminClient, ends) -> bool:
    for group, partitions in ends.items():
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(p.topic, p.partition) for p in partitions]
        )
        try:
            result = admin.list_consumer_group_offsets([request])[group].result(timeout=15)
        except KafkaException:
            return False
        committed = {(p.topic, p.partition): p.offset for p in result.topic_partitions}
        for end in partitions:
            if end.offset > 0 and committed.get((end.topic, end.partition), -1) < end.offset:
                return False
    return True
