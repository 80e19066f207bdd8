"""The feed's read models: authors, the follow graph, entries, readers; processed events.

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
    op.create_table(
        "authors",
        sa.Column("user_id", uuid, primary_key=True),
        sa.Column("username", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False, server_default=""),
        sa.Column("celebrity", sa.Boolean, nullable=False, server_default="false"),
    )
    op.create_table(
        "follows",
        sa.Column("follower_id", uuid, primary_key=True),
        sa.Column("followee_id", uuid, primary_key=True),
    )
    op.create_index("follows_by_followee", "follows", ["followee_id", "follower_id"])
    op.create_table(
        "entries",
        sa.Column("entry_id", uuid, primary_key=True),
        sa.Column("author_id", uuid, nullable=False),
        sa.Column("score", sa.BigInteger, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("fanned_out", sa.Boolean, nullable=False, server_default="false"),
    )
    op.create_index(
        "entries_by_author",
        "entries",
        ["author_id", sa.text("score DESC"), sa.text("entry_id DESC")],
        postgresql_where=sa.text("NOT deleted"),
    )
    op.create_table(
        "readers",
        sa.Column("user_id", uuid, primary_key=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False, server_default=now),
    )
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
    )
