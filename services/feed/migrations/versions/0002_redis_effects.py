"""What a committed event still has to do to Redis (see services.feed.projector).

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
    op.create_table(
        "redis_effects",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("effects", postgresql.JSONB, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("redis_effects")
