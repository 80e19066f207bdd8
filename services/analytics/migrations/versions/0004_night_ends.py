"""When each night's last entry ended, so streaks can tell a date the calendar skipped
(a flight east across the date line) from a night not slept (stats.domain.follows).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("nights", sa.Column("last_end", sa.DateTime(timezone=True)))
    op.execute(
        """
        UPDATE nights n SET last_end = (
            SELECT max(e.start_time + make_interval(secs => e.seconds)) FROM entries e
            WHERE e.user_id = n.user_id AND e.sleep_date = n.sleep_date AND NOT e.deleted
        )
        """
    )
    op.execute("DELETE FROM nights WHERE last_end IS NULL")  # none: a night has an entry
    op.alter_column("nights", "last_end", nullable=False)


def downgrade() -> None:
    op.drop_column("nights", "last_end")
