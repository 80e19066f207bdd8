"""Streak boards: each user's sleep goal, their runs of nights at it, and each window's streak
(services.leaderboard.streaks).

Goals copied before this revision are the user service's default (8 hours) until the
user's next profile event; runs and streaks fill from the nights applied from now on
(`make replay-leaderboard` fills them from the first event).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    uuid = postgresql.UUID(as_uuid=False)
    op.add_column(
        "users", sa.Column("goal_seconds", sa.Integer, nullable=False, server_default="28800")
    )
    op.create_table(
        "streak_runs",
        sa.Column("user_id", uuid, primary_key=True),
        sa.Column("first_date", sa.Date, primary_key=True),
        sa.Column("last_date", sa.Date, nullable=False),
    )
    op.create_table(
        "streaks",
        sa.Column("window_id", sa.Text, primary_key=True),
        sa.Column("user_id", uuid, primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
        sa.Column("reached_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "streaks_ranked",
        "streaks",
        ["window_id", sa.text("value DESC"), "reached_at", sa.text("user_id DESC")],
    )


def downgrade() -> None:
    op.drop_table("streaks")
    op.drop_table("streak_runs")
    op.drop_column("users", "goal_seconds")
