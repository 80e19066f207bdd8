"""Nights started live: an entry's state, its planned end, when it was recorded (where feeds
place it: a night finished live is recorded when it ends), and what lists order by.

An open or abandoned night has no end (nor sleep date) yet. Only recorded
nights may not overlap, and a user has at most one open night at a time: the
exclusion constraint now covers recorded nights only, and a partial unique
index the open ones. Lists order by `list_time`, the end or else the start.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

RECORDED = "state = 'recorded'"
EXCLUDE_OVERLAPS = (
    "ALTER TABLE sleep_entries ADD CONSTRAINT no_overlapping_nights EXCLUDE USING gist "
    "(user_id WITH =, tstzrange(start_time, end_time) WITH &&)"
)


def upgrade() -> None:
    op.add_column(
        "sleep_entries",
        sa.Column("state", sa.Text, nullable=False, server_default="recorded"),
    )
    op.add_column("sleep_entries", sa.Column("planned_end_time", sa.DateTime(timezone=True)))
    op.add_column("sleep_entries", sa.Column("recorded_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE sleep_entries SET recorded_at = created_at")
    op.alter_column("sleep_entries", "end_time", nullable=True)
    op.alter_column("sleep_entries", "sleep_date", nullable=True)
    op.create_check_constraint(
        "known_state", "sleep_entries", "state IN ('recorded', 'open', 'abandoned')"
    )
    op.create_check_constraint(
        "recorded_nights_end",
        "sleep_entries",
        f"({RECORDED}) = (end_time IS NOT NULL AND sleep_date IS NOT NULL)",
    )
    op.drop_constraint("no_overlapping_nights", "sleep_entries")
    op.execute(EXCLUDE_OVERLAPS + f" WHERE ({RECORDED})")
    op.create_index(
        "one_open_night",
        "sleep_entries",
        ["user_id"],
        unique=True,
        postgresql_where=sa.text("state = 'open'"),
    )
    op.create_index(
        "open_nights_by_start",
        "sleep_entries",
        ["start_time"],
        postgresql_where=sa.text("state = 'open'"),
    )
    op.add_column(
        "sleep_entries",
        sa.Column(
            "list_time",
            sa.DateTime(timezone=True),
            sa.Computed("coalesce(end_time, start_time)", persisted=True),
        ),
    )
    op.create_index("sleep_entries_listed", "sleep_entries", ["user_id", "list_time", "id"])
    op.drop_index("sleep_entries_by_user", "sleep_entries")


def downgrade() -> None:
    op.execute("DELETE FROM sleep_entries WHERE state <> 'recorded'")
    op.create_index("sleep_entries_by_user", "sleep_entries", ["user_id", "end_time", "id"])
    op.drop_index("sleep_entries_listed", "sleep_entries")
    op.drop_column("sleep_entries", "list_time")
    op.drop_index("open_nights_by_start", "sleep_entries")
    op.drop_index("one_open_night", "sleep_entries")
    op.drop_constraint("no_overlapping_nights", "sleep_entries")
    op.execute(EXCLUDE_OVERLAPS)
    op.drop_constraint("recorded_nights_end", "sleep_entries")
    op.drop_constraint("known_state", "sleep_entries")
    op.alter_column("sleep_entries", "sleep_date", nullable=False)
    op.alter_column("sleep_entries", "end_time", nullable=False)
    op.drop_column("sleep_entries", "recorded_at")
    op.drop_column("sleep_entries", "planned_end_time")
    op.drop_column("sleep_entries", "state")
