"""TrackEvents: check a batch, drop bots, hash visitors, append to Kafka, answer.

Accepting is quick because counting is not done here: the events are
appended to zentry.analytics.client-events (acks=all, waiting for the
acknowledgement, so an accepted event is never lost) and the rollup consumer
counts them moments later. A batch that fails to append is UNAVAILABLE; the
app sends it again, and the event ids make the resend count once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime

from confluent_kafka import KafkaError, Producer
from zentry.analytics.v1 import product_analytics_service_pb2 as pb
from zentry.events.v1 import analytics_events_pb2 as aev

from services.analytics.product import store, tracking
from services.kit.auth import Caller
from services.kit.db import Database
from services.kit.errors import Unavailable
from services.kit.events import CLIENT_EVENTS, envelope
from services.kit.outbox import producer_config

DELIVERY_TIMEOUT_MS = 5000
RETRY = "resend the same batch: events already counted are counted once"


class AsyncProducer:
    """A Kafka producer whose acknowledgements resolve asyncio futures.

    librdkafka calls delivery callbacks from `poll`, which a daemon thread
    runs; each callback hands its result to the event loop that is waiting.
    Both start with the first batch, so a consumer-only instance, which never
    serves TrackEvents, opens no producer.
    """

    def __init__(self, bootstrap: str, client_id: str, topic: str = CLIENT_EVENTS):
        config = producer_config(bootstrap, client_id)
        self._config = {**config, "message.timeout.ms": DELIVERY_TIMEOUT_MS}
        self._topic = topic
        self._producer: Producer | None = None
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-acks", daemon=True)

    def _started(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(self._config)
            self._poller.start()
        return self._producer

    def _poll(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)

    async def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Append (key, value) messages; returns once Kafka has acknowledged all of them."""
        if not messages:
            return
        producer = self._started()
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        waiting = [len(messages)]  # only the poll thread counts down (callbacks run in poll)
        errors: list[KafkaError] = []

        def delivered(error, _message):
            if error is not None:
                errors.append(error)
            waiting[0] -= 1
            if waiting[0] == 0:  # one wake-up of the event loop per batch, not per message
                loop.call_soon_threadsafe(_settle, done)

        for key, value in messages:
            try:
                producer.produce(self._topic, key=key, value=value, on_delivery=delivered)
            except BufferError:
                raise Unavailable(f"Too many events in flight; {RETRY}.") from None
        await done
        if errors:
            raise Unavailable(f"Kafka did not take the events ({errors[0]}); {RETRY}.")

    async def close(self) -> None:
        if self._producer is None:
            return
        await asyncio.to_thread(self._producer.flush, DELIVERY_TIMEOUT_MS / 1000)
        self._closed.set()
        await asyncio.to_thread(self._poller.join, 1.0)


def _settle(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class Salts:
    """The day's salt, remembered by each process for the day."""

    def __init__(self, db: Database):
        self._db = db
        self._known: dict[date, bytes] = {}

    async def of(self, day: date) -> bytes:
        salt = self._known.get(day)
        if salt is None:
            async with self._db.transaction() as session:
                salt = await store.salt_of(session, day)
            self._known = {day: salt}  # yesterday's is not needed again
        return salt


class Intake:
    def __init__(self, salts: Salts, producer: AsyncProducer, limits: tracking.Limits):
        self._salts = salts
        self._producer = producer
        self._limits = limits

    async def track(
        self,
        request: pb.TrackEventsRequest,
        caller: Caller | None,
        address: str,
        user_agent: str,
    ) -> pb.TrackEventsResponse:
        now = datetime.now(UTC)
        user_id = caller.user_id if caller else None
        tracking.check_batch(request.events, now, self._limits, user_id)
        if tracking.is_bot(user_agent):
            return pb.TrackEventsResponse(accepted_count=0, dropped_count=len(request.events))
        salt = await self._salts.of(now.date())
        messages = []
        for event in request.events:
            visitor = tracking.visitor_id(salt, user_id, address, user_agent, event.anonymous_id)
            accepted = aev.ClientEventAccepted(
                event_id=event.event_id,
                name=event.name,
                event_time=event.event_time,
                visitor_id=visitor,
                user_id=user_id or "",
                client_session_id=event.session_id,
                page=event.page,
                referrer=event.referrer,
                properties=event.properties,
            )
            accepted.receive_time.FromDatetime(now)
            wrapped = envelope(accepted, visitor, "analytics", occur_time=now)
            messages.append((visitor, wrapped.SerializeToString()))
        await self._producer.publish(messages)
        return pb.TrackEventsResponse(accepted_count=len(messages), dropped_count=0)
