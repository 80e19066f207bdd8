"""Protobuf's well-known Timestamp and Duration, from and to Python values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message


def timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def duration(length: timedelta) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromTimedelta(length)
    return value


def instant(message: Message, field: str) -> datetime | None:
    """A Timestamp field as an aware UTC datetime; None when the field is not set."""
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=UTC)
