"""The kit's Database against a real PostgreSQL: what its errors show."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.kit.db import Database

SECRET = "$argon2id$v=19$m=65536,t=3,p=4$c2VjcmV0LWhhc2g"


async def test_a_failed_statement_does_not_show_its_values(blank_database):
    """Errors reach the logs: they must not carry password hashes or emails with them."""
    db = Database(blank_database)
    try:
        with pytest.raises(DBAPIError) as failure:
            async with db.transaction() as session:
                await session.execute(text("SELECT CAST(:hash AS text), 1 / 0"), {"hash": SECRET})
    finally:
        await db.dispose()
    assert "division by zero" in str(failure.value)
    assert SECRET not in str(failure.value) and "c2VjcmV0" not in repr(failure.value)
