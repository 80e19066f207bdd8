"""Who may see a user's nights: their setting, and who follows whom.

Both are copies fed by the user service's events (services.sleep.directory).
Profiles copied before this revision get the default the user service gives
its existing accounts ("followers"); the follows copy fills from the start
of the log, its consumer group being new.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    uuid = postgresql.UUID(as_uuid=False)
    op.add_column(
        "users",
        sa.Column("nights_visible_to", sa.Text, nullable=False, server_default="followers"),
    )
    op.create_table(
        "follows",
        sa.Column("follower_id", uuid, primary_key=True),
        sa.Column("followee_id", uuid, primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("follows")
    op.drop_column("users", "nights_visible_to")
