"""Users, follows, and the event outbox.

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
    op.create_table(
        "users",
        sa.Column("id", postgresql.UUID(as_uuid=False), primary_key=True),
        sa.Column("username", sa.Text, nullable=False),
        sa.Column("username_key", sa.Text, nullable=False, unique=True),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("email_key", sa.Text, nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("bio", sa.Text, nullable=False, server_default=""),
        sa.Column("time_zone", sa.Text, nullable=False),
        sa.Column("sleep_goal_seconds", sa.Integer, nullable=False),
        sa.Column("follower_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("following_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("celebrity", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.CheckConstraint(
            "follower_count >= 0 AND following_count >= 0", name="counts_not_negative"
        ),
    )
    op.create_table(
        "follows",
        sa.Column(
            "follower_id",
            postgresql.UUID(as_uuid=False),
            sa.ForeignKey("users.id"),
            primary_key=True,
        ),
        sa.Column(
            "followee_id",
            postgresql.UUID(as_uuid=False),
            sa.ForeignKey("users.id"),
            primary_key=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.CheckConstraint("follower_id <> followee_id", name="no_self_follow"),
    )
    op.create_index("follows_by_followee", "follows", ["followee_id", "created_at", "follower_id"])
    op.create_index("follows_by_follower", "follows", ["follower_id", "created_at", "followee_id"])
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


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("follows")
    op.drop_table("users")
