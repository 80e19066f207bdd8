"""When each score change was recorded, indexed, for the ledger's retention sweep
(services.kit.retention, ZENTRY_LEADERBOARD_LEDGER_RETENTION_DAYS).

`occurred_at` is when the night changed, which a replay records again years later: the
sweep needs when the row was written. Rows from before this revision get the time of the
migration (a constant default: no table rewrite), so they are kept one retention from now.
Building the index holds off the ledger's writes (reads go on) for as long as it takes, a
few seconds per ten million rows; to avoid that on a large ledger, add the column and
create the index CONCURRENTLY ahead of the deploy with the same statements (and check it
is valid): this migration then finds both there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE score_changes ADD COLUMN IF NOT EXISTS recorded_at timestamptz "
        "NOT NULL DEFAULT now()"
    )
    op.execute("CREATE INDEX IF NOT EXISTS score_changes_by_time ON score_changes (recorded_at)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS score_changes_by_time")
    op.execute("ALTER TABLE score_changes DROP COLUMN recorded_at")
