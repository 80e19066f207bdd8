"""The transactional outbox: events are rows written with the change, then relayed to Kafka.

`Outbox.add` writes the event in the caller's transaction, so a rolled-back
change publishes nothing. `OutboxRelay` publishes committed rows in id order
and deletes them once Kafka has acknowledged them (acks=all, idempotent
producer). Only one relay per database publishes at a time (it holds a
PostgreSQL advisory lock), so one user's events keep their order on the topic.

The relay does not poll: `add` notifies CHANNEL in the same statement (a
NOTIFY is delivered at commit, and only then), and the relay holding the lock
LISTENs on its lock's connection: woken by a commit, it gathers `gather`
seconds more (a steady trickle goes out in batches, not one by one), then
publishes. It also looks every `idle_wait` seconds, should a notification go
astray. The price: PostgreSQL commits transactions that notified one at a time
(a lock of the whole server, held while the commit is flushed), which bounds
how many events a second one PostgreSQL server accepts; far above today's.

While rows wait, the relay holding the lock reports how many and how long the
oldest has waited (services.kit.metrics), and each event it publishes in a
sampled trace gets a PRODUCER span in the trace of the request that added it,
whose context the Kafka message then carries to the consumers.

Delivery is at least once: a relay killed between Kafka's acknowledgement and
its own commit republishes that batch on restart. A relay stopped through
`stop` finishes its batch first, so an orderly restart publishes exactly once.
Consumers apply each event id once (services.kit.consumer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from confluent_kafka import KafkaException, Producer
from google.protobuf.message import Message
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit import metrics, telemetry
from services.kit.addresses import kafka_security
from services.kit.db import Database
from services.kit.events import envelope
from services.kit.tables import outbox

_log = logging.getLogger(__name__)

RELAY_LOCK = 7_201_901
#: Seconds between two counts of the rows waiting (zentry_outbox_waiting) while some wait.
MEASURE_INTERVAL = 5.0
#: What `add` notifies and the relay listens for (a service's own database: its own channel).
CHANNEL = "zentry_outbox"


class Outbox:
    """Adds events for one topic, produced by one service."""

    def __init__(self, topic: str, producer: str):
        self.topic = topic
        self.producer = producer

    async def add(self, session: AsyncSession, payload: Message, subject_user_id: str) -> str:
        """Write the event in `session`'s transaction; returns its event id."""
        event = envelope(payload, subject_user_id, self.producer)
        headers = {key: value.decode() for key, value in telemetry.kafka_headers()}
        added = (
            insert(outbox)
            .values(
                event_id=event.event_id,
                topic=self.topic,
                key=subject_user_id,
                event_type=event.event_type,
                envelope=event.SerializeToString(),
                headers=headers,
            )
            .returning(outbox.c.id)
            .cte("added")
        )
        # One round trip: the row, and a notification the relay receives at commit.
        await session.execute(select(func.pg_notify(CHANNEL, "")).select_from(added))
        return event.event_id


#: Rows counted at most by a measure (a Kafka outage can leave millions: no full scan).
COUNT_CAP = 100_000
#: The rows waiting (at most COUNT_CAP) and the seconds the oldest (the lowest id) has waited.
_BACKLOG = text(
    f"SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox LIMIT {COUNT_CAP}) AS capped),"
    " coalesce(extract(epoch FROM now() - (SELECT created_at FROM outbox ORDER BY id LIMIT 1)),"
    " 0)::float8"
)


def producer_config(bootstrap: str, client_id: str) -> dict:
    return {
        **kafka_security(),
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "logger": logging.getLogger("kafka.producer"),
    }


class OutboxRelay:
    """Publishes committed outbox rows to Kafka; run one per service instance."""

    def __init__(
        self,
        db: Database,
        bootstrap: str,
        client_id: str,
        *,
        service: str = "",
        batch_size: int = 500,
        idle_wait: float = 0.5,
        gather: float = 0.05,
        delivery_timeout: float = 30.0,
    ):
        self._db = db
        self._config = producer_config(bootstrap, client_id)
        self._made: Producer | None = None
        self._batch_size = batch_size
        self._idle_wait = idle_wait
        self._gather = gather
        self._delivery_timeout = delivery_timeout
        self._stopping = asyncio.Event()
        self.published = 0
        service = service or client_id  # the label of its metrics
        self._published = metrics.OUTBOX_PUBLISHED.labels(service)
        self._waiting = metrics.OUTBOX_WAITING.labels(service)
        self._oldest = metrics.OUTBOX_OLDEST.labels(service)
        self._measured_at = 0.0

    @property
    def _producer(self) -> Producer:
        """Made for the first batch, so an instance that never relays opens no connection."""
        if self._made is None:
            self._made = Producer(self._config)
        return self._made

    def stop(self) -> None:
        """Ask `run` to return after the batch in hand; does not block."""
        self._stopping.set()

    async def run(self) -> None:
        """Relay until `stop()`; waits as a standby while another instance holds the lock."""
        while not self._stopping.is_set():
            try:
                async with self._db.session() as lock_conn:
                    if not await self._try_lock(lock_conn):
                        # A standby: the holder reports the backlog (no stale count here).
                        self._waiting.set(0)
                        self._oldest.set(0)
                        await self._pause(1.0)
                        continue
                    await lock_conn.execute(text(f"LISTEN {CHANNEL}"))
                    await lock_conn.commit()
                    listener = (await lock_conn.get_raw_connection()).driver_connection
                    try:
                        while not self._stopping.is_set():
                            if await self.relay_batch() == 0:
                                self._waiting.set(0)
                                self._oldest.set(0)
                                await self._until_added(listener)
                            else:
                                await self._measure()
                    except BaseException:
                        # Closed, not pooled: the lock and the LISTEN end with the session.
                        await lock_conn.invalidate()
                        raise
                    # Stopped: let go of the lock and the LISTEN before the session ends.
                    await lock_conn.execute(text("UNLISTEN *"))
                    await lock_conn.execute(
                        text("SELECT pg_advisory_unlock(:k)"), {"k": RELAY_LOCK}
                    )
                    await lock_conn.commit()
            except Exception:
                _log.exception("outbox relay failed; retrying in 1 s")
                await self._measure()
                await self._pause(1.0)

    async def relay_batch(self) -> int:
        """Publish up to one batch and delete it once acknowledged; returns how many rows."""
        async with self._db.transaction() as session:
            rows = (
                await session.execute(
                    select(outbox).order_by(outbox.c.id).limit(self._batch_size).with_for_update()
                )
            ).all()
            if not rows:
                return 0
            failures: list[str] = []

            def delivered(error, _message):
                if error is not None:
                    failures.append(str(error))

            spans = []
            try:
                for row in rows:
                    headers = row.headers
                    span = telemetry.publishing(row.topic, row.event_id, headers)
                    if span is not None:
                        spans.append(span)
                        headers = {**headers, **telemetry.headers_of(span)}
                    self._producer.produce(
                        row.topic,
                        key=row.key.encode(),
                        value=row.envelope,
                        headers=[
                            ("event-type", row.event_type.encode()),
                            *((k, v.encode()) for k, v in headers.items()),
                        ],
                        on_delivery=delivered,
                    )
                remaining = await asyncio.to_thread(self._producer.flush, self._delivery_timeout)
            finally:
                for span in spans:
                    span.end()
            if remaining or failures:
                raise KafkaException(
                    f"{remaining} undelivered, {len(failures)} failed: {failures[:3]}"
                )
            await session.execute(delete(outbox).where(outbox.c.id.in_([r.id for r in rows])))
        self.published += len(rows)
        self._published.inc(len(rows))
        return len(rows)

    async def _measure(self) -> None:
        """Count the rows waiting and the age of the oldest, at most every MEASURE_INTERVAL
        seconds (a batch that found none says so for free); a failure is only logged."""
        now = asyncio.get_running_loop().time()
        if now - self._measured_at < MEASURE_INTERVAL:
            return
        self._measured_at = now
        try:
            async with self._db.transaction() as session:
                waiting, oldest = (await session.execute(_BACKLOG)).one()
        except Exception as error:
            _log.warning("could not count the outbox's rows: %r", error)
            return
        self._waiting.set(waiting)
        self._oldest.set(oldest)

    async def _until_added(self, listener) -> None:
        """Until an `add` commits (a notification) or `idle_wait` passes; after a
        notification, `gather` seconds more, so that a steady trickle of events goes out in
        batches, not one by one. One pause however many notifications came at once: they
        pile up while a batch is published, and a pause each fell further behind."""
        notified = listener.notifies(timeout=self._idle_wait, stop_after=1)
        async with contextlib.aclosing(notified):
            async for _ in notified:
                break
            else:
                return
        await self._pause(self._gather)

    async def _try_lock(self, conn) -> bool:
        result = await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": RELAY_LOCK})
        await conn.commit()
        return bool(result.scalar())

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
