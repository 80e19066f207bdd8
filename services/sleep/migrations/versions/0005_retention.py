"""Indexes for the retention sweeps (services.kit.retention): processed events by when they
were applied, create requests by when they were made.

Building an index holds off writes to its table (reads go on) for as long as it takes,
a few seconds per ten million rows. To build them without that on a large table, create
them ahead of the deploy with the same statements and CONCURRENTLY (and check they are
valid); this migration then finds them there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEXES = {
    "processed_events_by_time": "processed_events (processed_at)",
    "create_requests_by_time": "create_requests (created_at)",
}


def upgrade() -> None:
    for name, on in INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {on}")


def downgrade() -> None:
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
