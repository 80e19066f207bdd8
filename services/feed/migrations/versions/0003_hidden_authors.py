"""Authors who share their nights with nobody (nightsVisibleTo onlyMe): in no feed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "authors", sa.Column("hidden", sa.Boolean, nullable=False, server_default="false")
    )


def downgrade() -> None:
    op.drop_column("authors", "hidden")
