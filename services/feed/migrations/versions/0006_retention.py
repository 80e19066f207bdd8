"""An index for the retention sweep of processed events (services.kit.retention), by when
each was applied.

Building it holds off writes to the table (reads go on) for as long as it takes, a few
seconds per ten million rows. To build it without that on a large table, create it ahead
of the deploy with the same statement and CONCURRENTLY (and check it is valid); this
migration then finds it there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS processed_events_by_time ON processed_events (processed_at)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS processed_events_by_time")
