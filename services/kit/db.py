"""PostgreSQL through SQLAlchemy 2 (async, psycopg 3): one database per service.

`Database.transaction()` is the unit of work: leaving the block commits,
an exception rolls back. Migrations are Alembic scripts in each service's
`migrations/` folder, applied by `migrate()` at start-up or by `make migrate`;
a PostgreSQL advisory lock keeps instances starting together from racing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Table, delete, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

from services.kit import metrics, telemetry
from services.kit.settings import PoolSettings

MIGRATION_LOCK = 7_201_900  # any constant; the same in every service's database
#: Session connections a process may hold at once: the outbox relay's and the feed
#: watchers' reader's (k8s/README.md counts one a pod, as at most one is held long).
SESSIONS = 2


class Database:
    """A pool of connections to `dsn` (sized by ZENTRY_DB_POOL_SIZE/_MAX_OVERFLOW), and
    `session()` for the rare work that needs PostgreSQL's own session (`session_dsn`)."""

    def __init__(self, dsn: str, *, pool_size: int | None = None, session_dsn: str | None = None):
        pool = PoolSettings.load()
        size = pool_size or pool.size
        self.engine: AsyncEngine = create_async_engine(
            dsn,
            pool_size=size,
            max_overflow=size if pool_size else pool.overflow,
            pool_pre_ping=True,
            # An error's message must not carry the values (hashes, emails) into the logs.
            hide_parameters=True,
            connect_args={} if pool.prepared_statements else {"prepare_threshold": None},
        )
        self._session_dsn = session_dsn or dsn
        self._session_engine: AsyncEngine | None = None
        database = self.engine.url.database or ""
        telemetry.trace_engine(self.engine, database)
        metrics.POOLS.add(database, self.engine.pool)

    def session(self) -> AsyncConnection:
        """A connection to PostgreSQL itself, never through a transaction pooler: for a
        session advisory lock or LISTEN. Use it as `async with db.session() as conn`; it goes
        back to a small pool of its own (a standby relay asks for one every second), so
        release what the session took, or `invalidate()` it to close it instead."""
        if self._session_engine is None:
            self._session_engine = create_async_engine(
                self._session_dsn,
                pool_size=SESSIONS,
                max_overflow=0,
                pool_pre_ping=True,
                hide_parameters=True,
            )
        return self._session_engine.connect()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One transaction; commits when the block ends, rolls back if it raises."""
        async with AsyncSession(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._session_engine is not None:
            await self._session_engine.dispose()


async def lock_keys(
    session: AsyncSession, space: int, keys: Iterable[str], *, shared: bool = False
) -> None:
    """Transaction-scoped advisory locks on `keys` (strings) within `space`.

    Taken in sorted order, so two transactions locking several keys cannot
    deadlock; released at commit or rollback. A lock the transaction already
    holds (as strongly) is not asked for again.
    """
    await lock_keys_each(session, space, dict.fromkeys(keys, shared))


async def lock_keys_each(session: AsyncSession, space: int, shared: Mapping[str, bool]) -> None:
    """As lock_keys, each key shared or not as `shared` says, all in the one sorted order."""
    held = session.info.setdefault("advisory_locks", {})  # (space, key) -> held shared only
    wanted = {
        key: only_shared
        for key, only_shared in shared.items()
        if (space, key) not in held or (held[space, key] and not only_shared)
    }
    ids = sorted(wanted)
    held.update({(space, k): wanted[k] for k in ids})
    if ids:
        await session.execute(
            text(
                "SELECT CASE WHEN s THEN pg_advisory_xact_lock_shared(:space, hashtext(k))::text"
                " ELSE pg_advisory_xact_lock(:space, hashtext(k))::text END"
                " FROM unnest(CAST(:ids AS text[]), CAST(:shared AS boolean[])) AS t(k, s)"
            ),
            {"space": space, "ids": ids, "shared": [wanted[k] for k in ids]},
        )


async def insert_if_absent(session: AsyncSession, table: Table, **values) -> bool:
    """Insert the row unless its key (or another unique column) is taken; True if it is new."""
    inserted = await session.execute(
        pg_insert(table)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(*table.primary_key.columns)
    )
    return inserted.first() is not None


async def delete_if_present(session: AsyncSession, table: Table, **key) -> bool:
    """Delete the rows whose columns equal `key`; True if there was one."""
    if not key:
        raise ValueError("delete_if_present needs a key: without one it would empty the table")
    deleted = await session.execute(
        delete(table)
        .where(*(table.c[column] == value for column, value in key.items()))
        .returning(*table.primary_key.columns)
    )
    return deleted.first() is not None


def migrate(dsn: str, migrations_dir: Path, revision: str = "head") -> None:
    """Bring the database to `revision`; blocking, idempotent, safe to run concurrently."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", dsn.replace("%", "%%"))
    command.upgrade(config, revision)


def run_migrations_env() -> None:
    """The body of every service's migrations/env.py (online mode only)."""
    from alembic import context
    from sqlalchemy import create_engine, pool

    engine = create_engine(
        context.config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            context.configure(connection=connection, transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
    engine.dispose()
