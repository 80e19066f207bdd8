"""The kit's PostgreSQL through the local PgBouncer in transaction mode, as production's Pooler.

A transaction pooler hands each transaction whichever server connection is free
(the one freed last, by default), so what outlives a transaction breaks:

- a prepared statement lives on the server connection that prepared it: the kit
  turns them off when told it sits behind one (ZENTRY_POSTGRES_POOLER=transaction);
- a transaction-scoped advisory lock (services.kit.db.lock_keys) lives and ends with its
  transaction, so it works; a session lock stays with the server connection, which
  the next client gets: the few session locks go to PostgreSQL itself (`Database.session`).

Each test has a database of its own, so no other client shares its server connections.
"""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.kit.db import Database, lock_keys

LOCKS = 7_201_950


@pytest.fixture
def pooled(settings, blank_database: str) -> str:
    """The test database's URL through PgBouncer."""
    postgres = settings.postgres
    return blank_database.replace(f":{postgres.port}/", f":{postgres.pooler_port}/")


async def prepared_twice_across_server_connections(db: Database) -> None:
    """Prepare a statement on one server connection, then use it where another is given.

    `first` runs its statement six times (psycopg prepares it from the fifth) while
    `other` holds a transaction open, so the pooler gives `first` a second server
    connection; `other` ends last, so its server connection is the one `first` gets next.
    """
    statement = text("SELECT CAST(:n AS int) + 1")
    async with db.engine.connect() as first, db.engine.connect() as other:
        await other.execute(text("SELECT 1"))  # holds a server connection until commit
        for n in range(6):
            await first.execute(statement, {"n": n})
        await first.commit()
        await other.commit()
        assert (await first.execute(statement, {"n": 41})).scalar() == 42
        await first.commit()


async def test_prepared_statements_are_off_behind_a_transaction_pooler(pooled, monkeypatch):
    monkeypatch.setenv("ZENTRY_POSTGRES_POOLER", "transaction")
    db = Database(pooled)
    try:
        await prepared_twice_across_server_connections(db)
    finally:
        await db.dispose()


async def test_without_the_setting_a_prepared_statement_is_lost_between_transactions(
    pooled, monkeypatch
):
    monkeypatch.delenv("ZENTRY_POSTGRES_POOLER", raising=False)
    db = Database(pooled)
    try:
        with pytest.raises(DBAPIError, match=r"prepared statement \S+ does not exist"):
            await prepared_twice_across_server_connections(db)
    finally:
        await db.dispose()


async def test_transaction_locks_hold_through_the_pooler_and_session_locks_do_not(
    pooled, blank_database, monkeypatch
):
    monkeypatch.setenv("ZENTRY_POSTGRES_POOLER", "transaction")
    db = Database(pooled, session_dsn=blank_database)
    taken = text("SELECT pg_try_advisory_xact_lock(:space, hashtext('night-1'))")
    try:
        async with db.transaction() as holder:
            await lock_keys(holder, LOCKS, ["night-1"])
            async with db.transaction() as rival:
                assert not (await rival.execute(taken, {"space": LOCKS})).scalar()
        async with db.transaction() as rival:  # released with the holder's commit
            assert (await rival.execute(taken, {"space": LOCKS})).scalar()

        # A session lock taken through the pooler stays on its server connection, which
        # the next client is given: that client "takes" the lock the first one holds.
        dsn = pooled.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as first:
            assert first.execute("SELECT pg_try_advisory_lock(42)").fetchone()[0]
            with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as second:
                assert second.execute("SELECT pg_try_advisory_lock(42)").fetchone()[0]
        async with db.session() as one, db.session() as two:
            # Both clients are gone, and the lock is still held: by a server connection of
            # the pooler's, which nobody will ever release it from.
            assert not (await one.execute(text("SELECT pg_try_advisory_lock(42)"))).scalar()
            # On PostgreSQL itself (Database.session) a lock is one session's, as it must be.
            lock = text("SELECT pg_try_advisory_lock(43)")
            assert (await one.execute(lock)).scalar()
            assert not (await two.execute(lock)).scalar()
    finally:
        await db.dispose()
