"""Event envelopes: how a domain message travels on a Kafka topic (zentry/events/v1)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from zentry.events.v1 import envelope_pb2

USER_EVENTS = "zentry.user.events"
SLEEP_EVENTS = "zentry.sleep.events"
CLIENT_EVENTS = "zentry.analytics.client-events"


def envelope(
    payload: Message, subject_user_id: str, producer: str, occur_time: datetime | None = None
) -> envelope_pb2.EventEnvelope:
    """Wrap `payload` with a fresh event id; the type is the payload's full proto name."""
    packed = any_pb2.Any()
    packed.Pack(payload)
    when = timestamp_pb2.Timestamp()
    when.FromDatetime(occur_time or datetime.now(UTC))
    return envelope_pb2.EventEnvelope(
        event_id=str(uuid.uuid4()),
        event_type=payload.DESCRIPTOR.full_name,
        occur_time=when,
        subject_user_id=subject_user_id,
        producer=producer,
        payload=packed,
    )
