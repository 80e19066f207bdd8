"""A Kafka consumer that applies what one fetch brought in one transaction.

For high-volume read models (leaderboards): per event, the one-at-a-time
runner (services.kit.consumer) pays a transaction and a processed-event row;
this one hands the handler a whole fetched batch, in partition order, inside
one transaction, and stores the batch's offsets once it has committed.

The handler makes redelivery harmless itself, in the database: typically by
inserting one row per event id with ON CONFLICT DO NOTHING and applying only
what was inserted (a ledger). Retries, outages and dead letters follow the
one policy of both runners (ConsumerRunner._retrying), with one addition: a
batch that keeps failing is applied again event by event, so only the poison
event is parked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as Proto
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncSession
from zentry.events.v1 import envelope_pb2

from services.kit import erasure, telemetry
from services.kit.consumer import ConsumerRunner, Subscription
from services.kit.db import Database

_log = logging.getLogger(__name__)

Event = tuple[envelope_pb2.EventEnvelope, Proto]
BatchHandler = Callable[[list[Event], AsyncSession], Awaitable[None]]


@dataclass(frozen=True)
class BatchSubscription:
    """A consumer group, its topics, the payload types it wants, and its batch handler."""

    group: str
    topics: tuple[str, ...]
    types: tuple[type[Proto], ...]
    handler: BatchHandler


class BatchConsumerRunner(ConsumerRunner):
    def __init__(
        self,
        db: Database,
        bootstrap: str,
        subscription: BatchSubscription,
        *,
        max_batch: int = 2000,
        **options,
    ):
        super().__init__(
            db, bootstrap, Subscription(subscription.group, subscription.topics), **options
        )
        self._types = {cls.DESCRIPTOR.full_name: cls for cls in subscription.types}
        self._batch_handler = subscription.handler
        self._fetch_batch = max_batch
        self.batches = 0

    async def _handle_fetched(self, messages: list[Message]) -> None:
        batch: list[tuple[Message, envelope_pb2.EventEnvelope, Proto]] = []
        done: list[Message] = []
        for message in messages:
            if message.error():
                if message.error().code() != KafkaError._PARTITION_EOF:
                    _log.warning("kafka: %s", message.error())
                continue
            done.append(message)
            decoded = await self._decode(message)
            if decoded is not None:
                batch.append((message, *decoded))
        if batch:
            with telemetry.tracer().start_as_current_span(
                "consume batch",
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.consumer.group.name": self._sub.group,
                    "messaging.batch.message_count": len(batch),
                },
            ):
                await self._apply(batch)
            self.batches += 1
        for message in done:
            self._store_offset(message)

    async def _decode(self, message: Message) -> tuple[envelope_pb2.EventEnvelope, Proto] | None:
        """The event and its payload; None if unwanted (skipped) or unreadable (parked)."""
        try:
            event = envelope_pb2.EventEnvelope.FromString(message.value() or b"")
            if not event.event_id:
                raise DecodeError("no event_id")
            payload_class = self._types.get(event.event_type)
            if payload_class is None:
                self.skipped += 1
                return None
            payload = payload_class()
            if not event.payload.Unpack(payload):
                raise DecodeError(f"payload is not a {event.event_type}")
        except DecodeError as error:
            await self._dead_letter(message, f"undecodable event: {error}", attempts=1)
            return None
        return event, payload

    async def _apply(self, batch: list[tuple[Message, envelope_pb2.EventEnvelope, Proto]]) -> None:
        """The batch in one transaction, with the runners' retries; then, if it still
        fails, event by event, so only the poison event is parked."""

        async def apply() -> None:
            async with self._db.transaction() as session:
                named = {id(p): erasure.users_named(p) for _m, _e, p in batch}
                gone = await erasure.erased(session, set().union(*named.values()))
                events = [(e, p) for _m, e, p in batch if not named[id(p)] & gone]
                if events:  # events of deleted accounts are skipped (services.kit.erasure)
                    await self._batch_handler(events, session)

        failed = await self._retrying(apply, f"applying a batch of {len(batch)}")
        if failed is None:
            self.applied += len(batch)
        elif len(batch) == 1:
            error, attempts = failed
            await self._dead_letter(batch[0][0], repr(error), attempts=attempts)
        else:
            for one in batch:
                await self._apply([one])
