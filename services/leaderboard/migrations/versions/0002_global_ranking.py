"""Who is ranked on the global boards, and whose nights a follower may count on.

Users copied before this revision get the defaults the user service gives its
existing accounts: nights visible to followers, not ranked globally.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("nights_visible_to", sa.Text, nullable=False, server_default="followers"),
    )
    op.add_column(
        "users",
        sa.Column("show_on_global_boards", sa.Boolean, nullable=False, server_default="false"),
    )


def downgrade() -> None:
    op.drop_column("users", "show_on_global_boards")
    op.drop_column("users", "nights_visible_to")
