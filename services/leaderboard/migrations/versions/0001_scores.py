"""Score changes (the ledger), scores per window, the user directory and follows.

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
    uuid = postgresql.UUID(as_uuid=False)
    op.create_table(
        "score_changes",
        # "<entry id>/<event type>/<revision>": what happened, whichever event said so.
        sa.Column("change_id", sa.Text, primary_key=True),
        sa.Column("user_id", uuid, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "scores",
        sa.Column("window_id", sa.Text, primary_key=True),
        sa.Column("user_id", uuid, primary_key=True),
        sa.Column("seconds", sa.BigInteger, nullable=False),
        sa.Column("nights", sa.Integer, nullable=False),
        sa.Column("reached_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("user_id", uuid, primary_key=True),
        sa.Column("username", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("time_zone", sa.Text, nullable=False),
    )
    op.create_table(
        "follows",
        sa.Column("follower_id", uuid, primary_key=True),
        sa.Column("followee_id", uuid, primary_key=True),
    )
