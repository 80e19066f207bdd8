"""Running a Kafka consumer: polling, commits, idempotency, retries, dead letters, tracing.

A service declares a `Subscription` (consumer group, topics, and a handler per
event type) and the kit does the rest. For each message, in order:

1. decode the EventEnvelope (undecodable → dead-letter topic at once);
2. in one database transaction, record (group, event id) in processed_events
   and run the handler; an event id seen before is skipped, so redelivery and
   replay change nothing twice, and so is an event naming a deleted account
   (services.kit.erasure); then the subscription's `after_commit`, if any
   (on every delivery: see Subscription);
3. on an exception, roll back and retry with exponential backoff, up to
   `max_attempts`; then park the message on `<topic>.dlt` with headers naming
   the group, the error and the attempt count (an outage, services.kit.errors.
   OUTAGES, is retried until it ends instead: the message is not to blame);
4. store the message's offset for commit, only after 2 or 3 is durable;
   librdkafka commits stored offsets every `COMMIT_INTERVAL_MS` and when the
   consumer closes. An offset is never committed ahead of its effect, and a
   crash before the commit redelivers events step 2 then skips.

Messages are fetched up to `FETCH_BATCH` at a time and handled one at a time,
in order, so one user's events (one key, one partition) are applied in order,
and nothing is buffered unbounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as Proto
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from zentry.events.v1 import envelope_pb2

from services.kit import erasure, telemetry
from services.kit.db import Database
from services.kit.errors import OUTAGES
from services.kit.outbox import producer_config
from services.kit.tables import processed_events
from services.kit.topics import dead_letter_topic

_log = logging.getLogger(__name__)


FETCH_BATCH = 100
COMMIT_INTERVAL_MS = 500


class Stopping(Exception):
    """The runner was asked to stop while an outage kept a message from being applied."""


Handler = Callable[[envelope_pb2.EventEnvelope, Proto, AsyncSession], Awaitable[None]]
AfterCommit = Callable[[envelope_pb2.EventEnvelope], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """What one consumer group reads and how each event type is applied.

    `handlers` maps a payload message class to `handler(envelope, payload, session)`;
    the handler changes state through `session` only (the kit commits it).
    Event types without a handler are skipped.

    `after_commit(envelope)`, if given, runs once the handler's transaction has
    committed, and again on every later delivery of the event, even one skipped
    as seen before: a crash between the commit and it redelivers the event,
    and it runs then. For effects outside the database (a cache) that must
    follow what committed and nothing else; it must be idempotent. The
    event's offset is stored only after it has succeeded.
    """

    group: str
    topics: tuple[str, ...]
    handlers: dict[type[Proto], Handler] = field(default_factory=dict)
    after_commit: AfterCommit | None = None


class ConsumerRunner:
    def __init__(
        self,
        db: Database,
        bootstrap: str,
        subscription: Subscription,
        *,
        max_attempts: int = 5,
        first_backoff: float = 0.2,
        max_backoff: float = 5.0,
        poll_timeout: float = 0.5,
        extra_config: dict | None = None,
    ):
        self._db = db
        self._sub = subscription
        self._handlers = {
            cls.DESCRIPTOR.full_name: (cls, fn) for cls, fn in subscription.handlers.items()
        }
        self._max_attempts = max_attempts
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._poll_timeout = poll_timeout
        self._fetch_batch = FETCH_BATCH
        # Clients are made in run(): an assembled but idle runner (ZENTRY_ROLE=api) holds none.
        self._consumer_config = {
            "bootstrap.servers": bootstrap,
            "group.id": subscription.group,
            # Commits only what store_offsets() marked done (see the module docstring).
            "enable.auto.commit": True,
            "enable.auto.offset.store": False,
            "auto.commit.interval.ms": COMMIT_INTERVAL_MS,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            # A member that vanished without leaving (killed mid-rebalance) holds up its
            # group's next rebalance until this expires: seconds, not the 45 s default.
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 2000,
            "logger": logging.getLogger("kafka.consumer"),
            **(extra_config or {}),
        }
        self._dlt_config = producer_config(bootstrap, f"{subscription.group}-dlt")
        self._stopping = asyncio.Event()
        # What happened so far, for tests and logs: events applied, skipped (seen before
        # or of no interest), parked; and failed attempts (each outage retry counts).
        self.applied = self.skipped = self.dead_lettered = self.retried = 0

    @property
    def group(self) -> str:
        """The consumer group it commits for."""
        return self._sub.group

    @property
    def topics(self) -> tuple[str, ...]:
        return self._sub.topics

    def stop(self) -> None:
        """Ask `run` to return after the message in hand; does not block."""
        self._stopping.set()

    async def run(self) -> None:
        """Consume until `stop()`; closes the consumer (leaving the group) on the way out."""
        self._consumer = Consumer(self._consumer_config)
        self._dlt = Producer(self._dlt_config)
        self._consumer.subscribe(list(self._sub.topics))
        try:
            while not self._stopping.is_set():
                try:
                    await self._handle_fetched(await asyncio.to_thread(self._fetch))
                except Stopping:
                    break
        finally:
            await asyncio.to_thread(self._consumer.close)
            await asyncio.to_thread(self._dlt.flush, 10)

    def _fetch(self) -> list[Message]:
        """Waits for the first message only; then takes what has already arrived behind it."""
        first = self._consumer.poll(self._poll_timeout)
        if first is None:
            return []
        return [first, *self._consumer.consume(self._fetch_batch - 1, 0)]

    async def _handle_fetched(self, messages: list[Message]) -> None:
        """One message at a time, in order; each offset stored once its effect is durable."""
        for message in messages:
            if self._stopping.is_set():
                return  # not stored: the next owner of the partition gets it again
            if message.error():
                if message.error().code() != KafkaError._PARTITION_EOF:
                    _log.warning("kafka: %s", message.error())
                continue
            await self._handle(message)
            self._store_offset(message)

    def _store_offset(self, message: Message) -> None:
        try:
            self._consumer.store_offsets(message=message)
        except KafkaException as error:  # the partition was revoked meanwhile: its new owner
            _log.info("offset not stored (%s); the event may be seen again", error)

    async def _handle(self, message: Message) -> None:
        try:
            event = envelope_pb2.EventEnvelope.FromString(message.value() or b"")
            if not event.event_id:
                raise DecodeError("no event_id")
        except DecodeError as error:
            await self._dead_letter(message, f"undecodable EventEnvelope: {error}", attempts=1)
            return
        entry = self._handlers.get(event.event_type)
        if entry is None:
            self.skipped += 1
            return
        payload_class, handler = entry
        parent = telemetry.context_from_kafka(message.headers())
        token = otel_context.attach(parent)
        try:
            await self._apply_with_retries(message, event, payload_class, handler)
        finally:
            otel_context.detach(token)

    async def _apply_with_retries(self, message, event, payload_class, handler) -> None:
        with telemetry.tracer().start_as_current_span(
            f"consume {event.event_type}",
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": message.topic(),
                "messaging.consumer.group.name": self._sub.group,
            },
        ):
            failed = await self._retrying(
                lambda: self._apply_once(event, payload_class, handler),
                f"handling {event.event_type} {event.event_id}",
                event_id=event.event_id,
            )
        if failed is not None:
            error, attempts = failed
            await self._dead_letter(message, repr(error), attempts=attempts)

    async def _retrying(
        self, apply: Callable[[], Awaitable[None]], what: str, event_id: str = ""
    ) -> tuple[Exception, int] | None:
        """The retry policy of every runner: `apply()` until it succeeds (None), or until it
        has failed `max_attempts` times by its own fault: then (the last error, attempts),
        and the caller parks what failed.

        An outage (services.kit.errors.OUTAGES: a store or peer unreachable, full or read
        only) is not the message's fault: it is retried at the longest backoff until it
        passes, never counted, never parked. If the runner is asked to stop meanwhile,
        raises Stopping: the event's offset is not stored, so it comes back (and what
        did commit of it is skipped then, while its after-commit step runs again).
        """
        backoff, failures = self._first_backoff, 0
        while True:
            try:
                await apply()
                return None
            except asyncio.CancelledError:
                raise
            except OUTAGES as error:
                outage, last_error = True, error
            except Exception as error:
                outage, last_error = False, error
                failures += 1
            self.retried += 1
            _log.warning(
                "%s failed (%s): %r",
                what,
                "outage" if outage else f"attempt {failures} of {self._max_attempts}",
                last_error,
                extra={"group": self._sub.group, "event_id": event_id},
            )
            if failures >= self._max_attempts:
                return last_error, failures
            if self._stopping.is_set() and outage:
                raise Stopping from last_error
            await asyncio.sleep(self._max_backoff if outage else backoff)
            backoff = min(backoff * 2, self._max_backoff)

    async def _apply_once(self, event, payload_class, handler) -> None:
        """The effect and the processed-event record commit together, or neither does."""
        payload = payload_class()
        if not event.payload.Unpack(payload):
            raise DecodeError(f"payload is not a {payload_class.DESCRIPTOR.full_name}")
        async with self._db.transaction() as session:
            first_time = await session.execute(
                insert(processed_events)
                .values(consumer=self._sub.group, event_id=event.event_id)
                .on_conflict_do_nothing()
                .returning(processed_events.c.event_id)
            )
            seen = first_time.first() is None
            if not seen and not await erasure.erased(session, erasure.users_named(payload)):
                await handler(event, payload, session)
        if self._sub.after_commit is not None:
            await self._sub.after_commit(event)
        if seen:
            self.skipped += 1
        else:
            self.applied += 1

    async def _dead_letter(self, message: Message, error: str, attempts: int) -> None:
        """Park the message as it came, plus why; blocks until Kafka has it."""
        headers = [
            *(message.headers() or []),
            ("zentry-dlt-group", self._sub.group.encode()),
            ("zentry-dlt-error", error[:1000].encode()),
            ("zentry-dlt-attempts", str(attempts).encode()),
            ("zentry-dlt-topic", message.topic().encode()),
            ("zentry-dlt-partition", str(message.partition()).encode()),
            ("zentry-dlt-offset", str(message.offset()).encode()),
        ]
        failures: list[str] = []
        self._dlt.produce(
            dead_letter_topic(message.topic()),
            key=message.key(),
            value=message.value(),
            headers=headers,
            on_delivery=lambda err, _m: err and failures.append(str(err)),
        )
        remaining = await asyncio.to_thread(self._dlt.flush, 30)
        if remaining or failures:
            # Not parked, so not committed: the message comes back after a restart.
            raise RuntimeError(f"could not dead-letter {message.topic()}: {failures or remaining}")
        self.dead_lettered += 1
        _log.error(
            "dead-lettered %s[%d]@%d after %d attempt(s): %s",
            message.topic(),
            message.partition(),
            message.offset(),
            attempts,
            error,
            extra={"group": self._sub.group},
        )
