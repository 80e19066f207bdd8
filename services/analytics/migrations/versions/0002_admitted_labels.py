"""The event names, property keys and values each day admits (see services.analytics.cardinality).

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
    op.create_table(
        "admitted",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("scope", sa.Text, primary_key=True),
        sa.Column("item", sa.Text, primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("admitted")
