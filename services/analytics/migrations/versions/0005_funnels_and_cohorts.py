"""Funnels and retention cohorts: raw events by name and time (funnels read only their steps'
events in their range), each signed-in user's first and last event time, and the UTC days
(with their active 15-minute buckets) each was active. Both are filled from the raw events
still kept (ZENTRY_ANALYTICS_RAW_RETENTION_DAYS), so a user active before that counts as
first seen at their oldest raw event.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_index(
        "raw_events_by_name_and_time",
        "raw_events",
        ["name", "event_time"],
        postgresql_include=["visitor_id", "user_id"],
    )
    op.create_table(
        "users_seen",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("first_seen", _ts, nullable=False),
        sa.Column("last_seen", _ts, nullable=False),
    )
    op.create_index("users_seen_by_first_seen", "users_seen", ["first_seen"])
    op.create_table(
        "active_days",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("quarters", postgresql.BIT(96), nullable=False),
    )
    op.create_index("active_days_by_day", "active_days", ["day"])  # the retention sweep
    op.execute(
        """
        INSERT INTO users_seen (user_id, first_seen, last_seen)
        SELECT user_id, min(event_time), max(event_time) FROM raw_events
        WHERE user_id IS NOT NULL GROUP BY user_id
        """
    )
    op.execute(
        """
        INSERT INTO active_days (user_id, day, quarters)
        SELECT user_id, CAST(timezone('UTC', event_time) AS date),
               bit_or(CAST(B'1' AS bit(96)) >> CAST(floor(
                   extract(epoch FROM event_time - date_trunc('day', event_time, 'UTC')) / 900
               ) AS integer))
        FROM raw_events WHERE user_id IS NOT NULL
        GROUP BY 1, 2
        """
    )


def downgrade() -> None:
    op.drop_table("active_days")
    op.drop_table("users_seen")
    op.drop_index("raw_events_by_name_and_time", table_name="raw_events")
