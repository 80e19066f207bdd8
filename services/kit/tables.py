"""The tables the kit itself reads and writes, in every service that produces or consumes events.

Services create them in their own Alembic migrations (a migration never
imports these definitions, so old migrations stay as they were written).
"""

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

#: Events waiting to be relayed to Kafka, written in the same transaction as the change.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("event_id", Text, nullable=False, unique=True),
    Column("topic", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False, server_default="{}"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: Event ids a consumer has applied: the database, not luck, makes redelivery harmless.
processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", Text, primary_key=True),
    Column("event_id", Text, primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The retention sweep's (services.kit.retention).
    Index("processed_events_by_time", "processed_at"),
)

#: Accounts their owners deleted (services.kit.erasure): kept for good, never emptied by a
#: replay, so that no event of theirs is applied again.
deleted_users = Table(
    "deleted_users",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("deleted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
