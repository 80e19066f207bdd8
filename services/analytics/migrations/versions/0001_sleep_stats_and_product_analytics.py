"""Sleep statistics (entries, nights, sleepers) and product analytics (raw events, rollups).

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

_ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sleepers",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("time_zone", sa.Text, nullable=False),
        sa.Column("goal_seconds", sa.Integer, nullable=False),
    )
    op.create_table(
        "entries",
        sa.Column("entry_id", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("sleep_date", sa.Date, nullable=False),
        sa.Column("start_time", _ts, nullable=False),
        sa.Column("seconds", sa.Integer, nullable=False),
        sa.Column("bedtime", sa.SmallInteger, nullable=False),
        sa.Column("wake_time", sa.SmallInteger, nullable=False),
        sa.Column("quality", sa.SmallInteger, nullable=False),
    )
    op.create_index("entries_by_night", "entries", ["user_id", "sleep_date"])
    op.create_table(
        "nights",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("sleep_date", sa.Date, primary_key=True),
        sa.Column("seconds", sa.Integer, nullable=False),
        sa.Column("entries", sa.Integer, nullable=False),
        sa.Column("bedtime", sa.SmallInteger, nullable=False),
        sa.Column("wake_time", sa.SmallInteger, nullable=False),
        sa.Column("quality", sa.Float, nullable=True),
    )
    op.create_table(
        "raw_events",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("event_time", _ts, nullable=False),
        sa.Column("receive_time", _ts, nullable=False),
        sa.Column("visitor_id", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text, nullable=True),
        sa.Column("client_session_id", sa.Text, nullable=False),
        sa.Column("page", sa.Text, nullable=False),
        sa.Column("referrer", sa.Text, nullable=False),
        sa.Column("properties", postgresql.JSONB, nullable=False),
    )
    op.create_index("raw_events_by_receive_time", "raw_events", ["receive_time"])
    op.create_table(
        "counts",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("dimension", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, primary_key=True),
        sa.Column("bucket", _ts, primary_key=True),
        sa.Column("events", sa.BigInteger, nullable=False),
    )
    op.create_index("counts_by_bucket", "counts", ["name", "dimension", "bucket"])
    op.create_table(
        "minute_counts",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("minute", _ts, primary_key=True),
        sa.Column("events", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("session_id", sa.Text, primary_key=True),
        sa.Column("visitor_id", sa.Text, nullable=False),
        sa.Column("started_at", _ts, nullable=False),
        sa.Column("ended_at", _ts, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("page_views", sa.Integer, nullable=False),
    )
    op.create_index("sessions_by_visitor", "sessions", ["visitor_id", "ended_at"])
    op.create_index("sessions_by_start", "sessions", ["started_at"])
    op.create_table(
        "visitor_sketches",
        sa.Column("bucket", _ts, primary_key=True),
        sa.Column("sketch", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "salts",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("salt", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "salts",
        "visitor_sketches",
        "sessions",
        "minute_counts",
        "counts",
        "raw_events",
        "nights",
        "entries",
        "sleepers",
    ):
        op.drop_table(table)
