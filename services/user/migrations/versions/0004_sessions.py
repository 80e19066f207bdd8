"""Sessions (one per log-in) and their refresh tokens, stored as SHA-256 digests.

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
    now = sa.text("now()")
    op.create_table(
        "sessions",
        sa.Column("id", uuid, primary_key=True),
        sa.Column("user_id", uuid, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("ended_why", sa.Text),
    )
    op.create_index("sessions_by_user", "sessions", ["user_id"])
    op.create_table(
        "refresh_tokens",
        sa.Column("digest", sa.Text, primary_key=True),
        sa.Column(
            "session_id", uuid, sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used", sa.Boolean, nullable=False, server_default="false"),
    )
    op.create_index("refresh_tokens_by_session", "refresh_tokens", ["session_id", "expires_at"])


def downgrade() -> None:
    op.drop_table("refresh_tokens")
    op.drop_table("sessions")
