"""Which transaction last changed each entry, so watchers can follow the feed's changes in
commit order (services.feed.watching).

Rows from before get 0: they changed before any watcher's cursor.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CURRENT_XID = "pg_current_xact_id()::text::bigint"


def upgrade() -> None:
    op.add_column(
        "entries", sa.Column("changed_xid", sa.BigInteger, nullable=False, server_default="0")
    )
    op.alter_column("entries", "changed_xid", server_default=sa.text(CURRENT_XID))
    op.create_index("entries_by_change", "entries", ["changed_xid", "entry_id"])
    op.create_index("entries_by_author_change", "entries", ["author_id", "changed_xid"])


def downgrade() -> None:
    op.drop_index("entries_by_author_change", "entries")
    op.drop_index("entries_by_change", "entries")
    op.drop_column("entries", "changed_xid")
