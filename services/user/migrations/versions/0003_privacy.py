"""Who may see a user's nights, follow requests, and ranking on the global boards.

Existing accounts get the defaults new ones get: nights visible to followers,
follows without approval, not ranked on the global boards.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("nights_visible_to", sa.Text, nullable=False, server_default="followers"),
    )
    op.add_column(
        "users", sa.Column("approve_followers", sa.Boolean, nullable=False, server_default="false")
    )
    op.add_column(
        "users",
        sa.Column("show_on_global_boards", sa.Boolean, nullable=False, server_default="false"),
    )
    op.create_table(
        "follow_requests",
        sa.Column(
            "followee_id",
            postgresql.UUID(as_uuid=False),
            sa.ForeignKey("users.id"),
            primary_key=True,
        ),
        sa.Column(
            "requester_id",
            postgresql.UUID(as_uuid=False),
            sa.ForeignKey("users.id"),
            primary_key=True,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index(
        "follow_requests_by_followee",
        "follow_requests",
        ["followee_id", "created_at", "requester_id"],
    )
    op.create_index("follow_requests_by_requester", "follow_requests", ["requester_id"])


def downgrade() -> None:
    op.drop_table("follow_requests")
    for column in ("show_on_global_boards", "approve_followers", "nights_visible_to"):
        op.drop_column("users", column)
