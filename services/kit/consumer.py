"""Running a Kafka consumer: polling, commits, idempotency, retries, dead letters, tracing.

A service declares what a consumer group reads and how it is applied, and the
kit does the rest. Either kind of subscription is applied a fetch at a time:
the runner takes what has arrived (up to `max_batch` messages) and, in order:

1. decodes each EventEnvelope (undecodable → dead-letter topic at once) and
   skips the event types the group has no use for, and dead letters re-driven
   for another group (services.kit.deadletters);
2. applies the batch in one database transaction. A `Subscription` (a handler
   per event type) records each (group, event id) in processed_events with one
   INSERT and runs the handler of every event recorded for the first time, in
   order; an event id seen before is skipped, so redelivery and replay change
   nothing twice (the records are kept for ZENTRY_PROCESSED_EVENTS_RETENTION_DAYS,
   longer than Kafka can hand an event again: services.kit.retention). A
   `BatchSubscription` hands the whole batch to its handler: the events seen
   for the first time, recorded as above (`once`), or all of them, for a
   handler that makes redelivery harmless itself. Either way an event naming
   a deleted account is skipped (services.kit.erasure), and a deletion ends
   its batch, so the events after it see it;
3. runs the subscription's `after_commit`, if any, once that has committed;
4. on an exception, rolls back and retries with exponential backoff, up to
   `max_attempts`; then applies the batch again event by event, so that only
   the event to blame is parked on `<topic>.dlt` with headers naming the
   group, the error and the attempt count (an outage, services.kit.errors.
   OUTAGES, is retried until it ends instead: the message is not to blame);
5. stores the batch's offsets for commit, only after 2 to 4 are durable;
   librdkafka commits stored offsets every `COMMIT_INTERVAL_MS` and when the
   consumer closes. An offset is never committed ahead of its effect, and a
   crash before the commit redelivers events step 2 then skips.

One user's events (one key, one partition) are applied in order, one
transaction serves many events, and nothing is buffered unbounded. Each
batch is a span linked to the traces its events were produced in, and each
event a span in its own trace (services.kit.telemetry); what the runner does
is counted, and its partitions' lag reported, in services.kit.metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as Proto
from opentelemetry.trace import Link, SpanKind, get_current_span
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from zentry.events.v1 import envelope_pb2

from services.kit import erasure, metrics, telemetry
from services.kit.addresses import kafka_security
from services.kit.db import Database
from services.kit.errors import OUTAGES
from services.kit.outbox import producer_config
from services.kit.topics import dead_letter_topic, redriven_for_another

_log = logging.getLogger(__name__)


FETCH_BATCH = 100
COMMIT_INTERVAL_MS = 500
#: A subscription's `linger` for read models nobody watches change event by event (boards,
#: statistics): each event 50 ms later, a trickle of them in a few transactions instead of
#: one each. With it, the consumers of a recorded night spent about a third less CPU on it
#: under 8 concurrent creates (python -m bench.sleep, two runs each).
GATHER = 0.05


class Stopping(Exception):
    """The runner was asked to stop while an outage kept a message from being applied."""


Event = tuple[envelope_pb2.EventEnvelope, Proto]
Handler = Callable[[envelope_pb2.EventEnvelope, Proto, AsyncSession], Awaitable[None]]
BatchHandler = Callable[[list[Event], AsyncSession], Awaitable[None]]
AfterCommit = Callable[[list[envelope_pb2.EventEnvelope]], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """What one consumer group reads and how each event type is applied.

    `handlers` maps a payload message class to `handler(envelope, payload, session)`;
    the handler changes state through `session` only (the kit commits it, with the
    processed-event records). Event types without a handler are skipped.

    `after_commit(envelopes)`, if given, runs once a batch's transaction has
    committed, with every event of the batch, even those skipped as seen
    before: a crash between the commit and it redelivers the events, and it
    runs then. For effects outside the database (a cache) that must follow
    what committed and nothing else; it must be idempotent. The events'
    offsets are stored only after it has succeeded.

    `linger`: seconds to wait, once an event has arrived, for more to apply in
    the same batch: fewer transactions when events trickle in, each applied
    that much later (0: take only what has already arrived).
    """

    group: str
    topics: tuple[str, ...]
    handlers: dict[type[Proto], Handler] = field(default_factory=dict)
    after_commit: AfterCommit | None = None
    linger: float = 0.0

    @property
    def types(self) -> tuple[type[Proto], ...]:
        return tuple(self.handlers)


@dataclass(frozen=True)
class BatchSubscription:
    """A consumer group, its topics, the payload types it wants, and its batch handler.

    `handler(events, session)` applies a batch, in partition order, through
    `session`. With `once`, the kit records each event in processed_events as
    for a Subscription and hands the handler only those it sees for the first
    time; without, the handler makes redelivery harmless itself, in the
    database (a ledger of its own, or revisions). `after_commit` and `linger`
    as for Subscription.
    """

    group: str
    topics: tuple[str, ...]
    types: tuple[type[Proto], ...]
    handler: BatchHandler
    after_commit: AfterCommit | None = None
    once: bool = False
    linger: float = 0.0


#: Records a batch's event ids for a group; those not recorded before (a fixed text whatever
#: the batch's size: converted and planned once per connection).
_CLAIM = text(
    "INSERT INTO processed_events (consumer, event_id)"
    " SELECT :group, unnest(CAST(:ids AS text[])) ON CONFLICT DO NOTHING RETURNING event_id"
)

#: Seconds between two readings of the consumer's lag (zentry_consumer_lag).
LAG_INTERVAL = 5.0

#: The event whose application erases an account (services.kit.erasure): it ends a batch.
_ERASING = "zentry.events.v1.UserDeleted"

_Decoded = tuple[Message, envelope_pb2.EventEnvelope, Proto]


class ConsumerRunner:
    def __init__(
        self,
        db: Database,
        bootstrap: str,
        subscription: Subscription | BatchSubscription,
        *,
        max_batch: int = FETCH_BATCH,
        max_attempts: int = 5,
        first_backoff: float = 0.2,
        max_backoff: float = 5.0,
        poll_timeout: float = 0.5,
        extra_config: dict | None = None,
    ):
        self._db = db
        self._sub = subscription
        self._types = {cls.DESCRIPTOR.full_name: cls for cls in subscription.types}
        self._fetch_batch = max_batch
        self._max_attempts = max_attempts
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._poll_timeout = poll_timeout
        # Clients are made in run(): an assembled but idle runner (ZENTRY_ROLE=api) holds none.
        self._consumer_config = {
            **kafka_security(),
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
        # What happened so far, for tests, logs and benchmarks: events applied, skipped
        # (seen before or of no interest), parked; failed attempts (each outage retry
        # counts); and batches committed.
        self.applied = self.skipped = self.dead_lettered = self.retried = self.batches = 0
        group = subscription.group
        self._applied = metrics.EVENTS_APPLIED.labels(group)
        self._skipped = metrics.EVENTS_SKIPPED.labels(group)
        self._lag_reported: set[tuple[str, int]] = set()
        self._lag_read_at = 0.0

    @property
    def group(self) -> str:
        """The consumer group it commits for."""
        return self._sub.group

    @property
    def topics(self) -> tuple[str, ...]:
        return self._sub.topics

    @property
    def keeps_processed_events(self) -> bool:
        """Whether it notes what it applied in processed_events."""
        return isinstance(self._sub, Subscription) or self._sub.once

    def stop(self) -> None:
        """Ask `run` to return after the batch in hand; does not block."""
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
                self._report_lag()
        finally:
            self._report_lag(closing=True)
            await asyncio.to_thread(self._consumer.close)
            await asyncio.to_thread(self._dlt.flush, 10)

    def _fetch(self) -> list[Message]:
        """Waits for the first message; then takes what arrives behind it within the
        subscription's `linger` (what has already arrived, with none)."""
        first = self._consumer.poll(self._poll_timeout)
        if first is None:
            return []
        return [first, *self._consumer.consume(self._fetch_batch - 1, self._sub.linger)]

    async def _handle_fetched(self, messages: list[Message]) -> None:
        """The fetched events in batches that end at a deletion; then every offset stored."""
        batch: list[_Decoded] = []
        done: list[Message] = []
        for message in messages:
            if message.error():
                if message.error().code() != KafkaError._PARTITION_EOF:
                    _log.warning("kafka: %s", message.error())
                continue
            done.append(message)
            decoded = await self._decode(message)
            if decoded is None:
                continue
            batch.append((message, *decoded))
            if decoded[0].event_type == _ERASING:
                await self._apply_traced(batch)
                batch = []
        if batch:
            await self._apply_traced(batch)
        for message in done:
            self._store_offset(message)

    def _report_lag(self, closing: bool = False, fresh: bool = False) -> None:
        """Every LAG_INTERVAL seconds, each owned partition's lag: its end, less the next
        offset this member will fetch. The end is the one the last fetch saw, or, `fresh`
        (while a batch is retried and nothing is fetched), the broker's now. A partition
        not read from since it was assigned is left out (its lag is not known here);
        partitions no longer owned (all, when closing) are dropped, so another member
        reports them. A failure to read them is logged: lag is no reason to stop."""
        now = time.monotonic()
        if not closing and now - self._lag_read_at < LAG_INTERVAL:
            return
        self._lag_read_at = now
        owned = set()
        try:
            if not closing:
                for position in self._consumer.position(self._consumer.assignment()):
                    if position.offset < 0:
                        continue
                    _low, high = self._consumer.get_watermark_offsets(
                        position, timeout=1.0, cached=not fresh
                    )
                    if high < 0:
                        continue
                    where = (position.topic, position.partition)
                    owned.add(where)
                    behind = max(high - position.offset, 0)
                    metrics.CONSUMER_LAG.labels(self._sub.group, *map(str, where)).set(behind)
        except KafkaException as error:
            _log.warning("could not read the consumer's lag: %s", error)
            return
        for topic, partition in self._lag_reported - owned:
            metrics.CONSUMER_LAG.remove(self._sub.group, topic, str(partition))
        self._lag_reported = owned

    def _store_offset(self, message: Message) -> None:
        try:
            self._consumer.store_offsets(message=message)
        except KafkaException as error:  # the partition was revoked meanwhile: its new owner
            _log.info("offset not stored (%s); the event may be seen again", error)

    async def _decode(self, message: Message) -> tuple[envelope_pb2.EventEnvelope, Proto] | None:
        """The event and its payload; None if unwanted (skipped) or unreadable (parked).

        A dead letter re-driven for another group is unwanted: this group applied the
        event (or parked it, and re-drives it for itself), see services.kit.deadletters."""
        if redriven_for_another(message.headers(), self._sub.group):
            self.skipped += 1
            self._skipped.inc()
            return None
        try:
            event = envelope_pb2.EventEnvelope.FromString(message.value() or b"")
            if not event.event_id:
                raise DecodeError("no event_id")
            payload_class = self._types.get(event.event_type)
            if payload_class is None:
                self.skipped += 1
                self._skipped.inc()
                return None
            payload = payload_class()
            if not event.payload.Unpack(payload):
                raise DecodeError(f"payload is not a {event.event_type}")
        except DecodeError as error:
            await self._dead_letter(message, f"undecodable event: {error}", attempts=1)
            return None
        return event, payload

    async def _apply_traced(self, batch: list[_Decoded]) -> None:
        """`_apply` in a span linked to the trace of every message that was produced in one."""
        links = [
            Link(span.get_span_context())
            for message, _e, _p in batch
            if (span := get_current_span(telemetry.context_from_kafka(message.headers())))
            .get_span_context()
            .is_valid
        ]
        with telemetry.tracer().start_as_current_span(
            "consume batch",
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.consumer.group.name": self._sub.group,
                "messaging.batch.message_count": len(batch),
            },
        ):
            await self._apply(batch)

    async def _apply(self, batch: list[_Decoded]) -> None:
        """The batch in one transaction, then its after-commit step, with the runner's
        retries; then, if it still fails, event by event, so only the poison is parked."""
        seen = 0

        async def apply() -> None:
            nonlocal seen
            async with self._db.transaction() as session:
                named = {id(p): erasure.users_named(p) for _m, _e, p in batch}
                gone = await erasure.erased(session, set().union(*named.values()))
                live = [item for item in batch if not named[id(item[2])] & gone]
                seen = await self._handle(live, session) if live else 0
            if self._sub.after_commit is not None:
                await self._sub.after_commit([event for _m, event, _p in batch])

        first = batch[0][1]
        what = f"applying {first.event_type} {first.event_id}"
        if len(batch) > 1:
            what = f"applying a batch of {len(batch)}"
        failed = await self._retrying(apply, what, event_id=first.event_id)
        if failed is None:
            self.applied += len(batch) - seen
            self.skipped += seen
            self.batches += 1
            self._applied.inc(len(batch) - seen)
            self._skipped.inc(seen)
        elif len(batch) == 1:
            error, attempts = failed
            await self._dead_letter(batch[0][0], repr(error), attempts=attempts)
        else:
            for one in batch:
                await self._apply([one])

    async def _handle(self, batch: list[_Decoded], session: AsyncSession) -> int:
        """Runs the subscription's handlers over the batch; how many it had seen before."""
        new = await self._first_seen(batch, session) if self.keeps_processed_events else batch
        if isinstance(self._sub, BatchSubscription):
            if new:
                traced = [(m.headers(), m.topic(), e.event_type) for m, e, _p in new]
                with telemetry.consuming(traced, self._sub.group):
                    await self._sub.handler([(e, payload) for _m, e, payload in new], session)
            return len(batch) - len(new)
        for message, event, payload in new:
            with telemetry.tracer().start_as_current_span(
                f"consume {event.event_type}",
                context=telemetry.context_from_kafka(message.headers()),
                kind=SpanKind.CONSUMER,
                links=[Link(get_current_span().get_span_context())],
                attributes={
                    "messaging.system": "kafka",
                    "messaging.destination.name": message.topic(),
                    "messaging.consumer.group.name": self._sub.group,
                },
            ):
                await self._sub.handlers[type(payload)](event, payload, session)
        return len(batch) - len(new)

    async def _first_seen(self, batch: list[_Decoded], session: AsyncSession) -> list[_Decoded]:
        """The batch's events this group never recorded before (one INSERT records them)."""
        claimed = set(
            await session.scalars(
                _CLAIM, {"group": self._sub.group, "ids": [e.event_id for _m, e, _p in batch]}
            )
        )
        new = []
        for item in batch:
            if item[1].event_id in claimed:
                claimed.discard(item[1].event_id)  # the same event twice in one fetch: once
                new.append(item)
        return new

    async def _retrying(
        self, apply: Callable[[], Awaitable[None]], what: str, event_id: str = ""
    ) -> tuple[Exception, int] | None:
        """The retry policy: `apply()` until it succeeds (None), or until it has failed
        `max_attempts` times by its own fault: then (the last error, attempts), and the
        caller parks what failed.

        An outage (services.kit.errors.OUTAGES: a store or peer unreachable, full or read
        only) is not the message's fault: it is retried at the longest backoff until it
        passes, never counted, never parked. If the runner is asked to stop meanwhile,
        raises Stopping: the events' offsets are not stored, so they come back (and what
        did commit of them is skipped then, while the after-commit step runs again).
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
            metrics.CONSUMER_RETRIES.labels(
                self._sub.group, "outage" if outage else "failure"
            ).inc()
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
            # Nothing is fetched while this batch waits: the lag from the broker itself, so
            # that it shows the group falling behind.
            await asyncio.to_thread(self._report_lag, fresh=True)
            await asyncio.sleep(self._max_backoff if outage else backoff)
            backoff = min(backoff * 2, self._max_backoff)

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
        metrics.EVENTS_PARKED.labels(self._sub.group, message.topic()).inc()
        _log.error(
            "dead-lettered %s[%d]@%d after %d attempt(s): %s",
            message.topic(),
            message.partition(),
            message.offset(),
            attempts,
            error,
            extra={"group": self._sub.group},
        )
