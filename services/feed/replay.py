"""`python -m services.feed.replay` (make replay-feed): rebuild the feed from Kafka's first event.

The domain topics keep every event, so the feed's read models can be thrown
away and rebuilt by the very handlers the live consumers run:

1. refuse while any feed consumer runs (a group with members), as Kafka's own
   offset reset does: stop the feed consumers first;
2. note where each topic ends now;
3. empty the read models (authors, follows, entries, processed events) and
   delete every feed key from Redis; when readers were last active is kept,
   since no event records it;
4. delete the consumer groups, so they start again from the beginning;
5. run the same consumer runners until their committed offsets reach the
   ends noted in 2, then stop.

Timelines are built again on each reader's next read, from the rebuilt
tables, exactly as after a Redis flush. Start the consumers again afterwards
(they continue from where the replay stopped).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from redis.asyncio import Redis
from sqlalchemy import text

from services.feed import app, store
from services.feed.config import FeedSettings
from services.feed.projector import ENTRIES_GROUP, GRAPH_GROUP
from services.kit.consumer import ConsumerRunner
from services.kit.db import Database, migrate
from services.kit.events import SLEEP_EVENTS, USER_EVENTS
from services.kit.settings import ConfigError


class ReplayRefused(Exception):
    """The replay would race a running consumer; the message says what to stop."""


@dataclass(frozen=True)
class ReplayReport:
    events: int
    seconds: float


async def replay(
    settings: FeedSettings,
    *,
    dsn: str,
    redis_url: str,
    bootstrap: str,
    user_topic: str = USER_EVENTS,
    sleep_topic: str = SLEEP_EVENTS,
    groups: tuple[str, str] = (GRAPH_GROUP, ENTRIES_GROUP),
    progress: Callable[[str], None] = lambda _line: None,
) -> ReplayReport:
    """Rebuild the read models from the topics' first events; see the module's docstring."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    await asyncio.to_thread(_refuse_if_running, admin, groups)
    ends = await asyncio.to_thread(
        _end_offsets,
        admin,
        bootstrap,
        groups[0],
        {groups[0]: user_topic, groups[1]: sleep_topic},
    )
    await asyncio.to_thread(migrate, dsn, app.MIGRATIONS)
    db, redis = Database(dsn), app.redis_client(redis_url)
    try:
        progress("emptying the feed's read models and its Redis keys")
        await _wipe(db, redis, groups)
        await asyncio.to_thread(_delete_groups, admin, groups)
        _timelines, projector, _reader = app.parts(settings, db, redis)
        runners = [
            ConsumerRunner(db, bootstrap, subscription)
            for subscription in projector.subscriptions(user_topic, sleep_topic, groups)
        ]
        started = time.monotonic()
        tasks = [asyncio.create_task(runner.run()) for runner in runners]
        try:
            while not await asyncio.to_thread(_caught_up, admin, ends):
                for task in tasks:
                    if task.done():
                        task.result()  # a runner that died: raise its error
                done = sum(r.applied + r.skipped + r.dead_lettered for r in runners)
                progress(f"{done} events replayed")
                await asyncio.sleep(0.5)
        finally:
            for runner in runners:
                runner.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
        seconds = time.monotonic() - started
        events = sum(r.applied + r.skipped + r.dead_lettered for r in runners)
        return ReplayReport(events, seconds)
    finally:
        await redis.aclose()
        await db.dispose()


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
                f"member(s) ({clients}); stop the feed service's consumers, then replay"
            )


def _end_offsets(admin, bootstrap: str, probe_group: str, topics: dict[str, str]):
    """{group: [TopicPartition at the topic's current end]} for every partition."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{probe_group}.replay-probe"})
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


async def _wipe(db: Database, redis: Redis, groups) -> None:
    async with db.transaction() as session:
        tables = ", ".join(t.name for t in (store.authors, store.follows, store.entries))
        await session.execute(text(f"TRUNCATE {tables}"))
        await session.execute(
            text("DELETE FROM processed_events WHERE consumer = ANY(:groups)"),
            {"groups": list(groups)},
        )
    batch: list[bytes] = []
    async for key in redis.scan_iter(match="feed:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await redis.unlink(*batch)
            batch.clear()
    if batch:
        await redis.unlink(*batch)


def _delete_groups(admin: AdminClient, groups) -> None:
    for future in admin.delete_consumer_groups(list(groups)).values():
        try:
            future.result(timeout=15)
        except KafkaException as error:
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


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.feed.replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args()
    try:
        settings = FeedSettings.load()
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    try:
        service = settings.service
        report = asyncio.run(
            replay(
                settings,
                dsn=service.postgres_dsn,
                redis_url=service.redis_url,
                bootstrap=service.kafka_bootstrap,
                progress=lambda line: print(f"replay: {line}", flush=True),
            )
        )
    except ReplayRefused as error:
        print(f"replay refused: {error}", file=sys.stderr)
        return 1
    rate = report.events / report.seconds if report.seconds else 0.0
    print(
        f"replay: {report.events} events applied in {report.seconds:.1f} s ({rate:.0f} events/s); "
        "timelines are rebuilt on each reader's next read"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
