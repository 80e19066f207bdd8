"""Sleep entries, create requests, the user directory, the outbox and processed events.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    now = sa.text("now()")
    uuid = postgresql.UUID(as_uuid=False)
    # btree_gist lets one exclusion constraint combine "same user" with "overlapping times".
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "sleep_entries",
        sa.Column("id", uuid, primary_key=True),
        sa.Column("user_id", uuid, nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("time_zone", sa.Text, nullable=False),
        sa.Column("sleep_date", sa.Date, nullable=False),
        sa.Column("quality", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("tags", postgresql.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("revision", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.CheckConstraint("end_time > start_time", name="ends_after_start"),
        sa.CheckConstraint("quality BETWEEN 0 AND 5", name="quality_in_range"),
        postgresql.ExcludeConstraint(
            ("user_id", "="),
            (sa.text("tstzrange(start_time, end_time)"), "&&"),
            name="no_overlapping_nights",
            using="gist",
        ),
    )
    op.create_index("sleep_entries_by_user", "sleep_entries", ["user_id", "end_time", "id"])
    op.create_table(
        "create_requests",
        sa.Column("user_id", uuid, primary_key=True),
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("entry_id", uuid, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
    )
    op.create_table(
        "users",
        sa.Column("id", uuid, primary_key=True),
        sa.Column("username", sa.Text, nullable=False),
        sa.Column("username_key", sa.Text, nullable=False),
        sa.Column("time_zone", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
    )
    op.create_index("users_by_username", "users", ["username_key"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False, unique=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
        sa.Column("headers", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
    )
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
    )


def downgrade() -> None:
    for table in ("processed_events", "outbox", "users", "create_requests", "sleep_entries"):
        op.drop_table(table)
