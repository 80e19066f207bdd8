"""Who the users on a board are (names, time zones), remembered briefly in each process.

Every query needs the names of twenty or so users; asking PostgreSQL each time
would cost more than the board itself. A name change shows within `ttl`
seconds. The caller's own zone is read from the user service first
(services.kit.profiles); this copy answers for it only when that cannot.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from services.kit.db import Database
from services.leaderboard import store
from services.leaderboard.store import UserRow

_REMEMBERED = 100_000
UNKNOWN_TTL = 1.0  # seconds a user not in the copy yet is remembered as unknown


class UserCache:
    def __init__(self, db: Database, ttl: float = 30.0):
        self._db = db
        self._ttl = ttl
        self._known: dict[str, tuple[float, UserRow | None]] = {}

    async def users(self, ids: Iterable[str]) -> dict[str, UserRow]:
        now = time.monotonic()
        wanted = set(ids)
        fresh = {i: self._known[i] for i in wanted if i in self._known}
        missing = [i for i in wanted if i not in fresh or fresh[i][0] < now]
        if missing:
            async with self._db.transaction() as session:
                found = await store.find_users(session, missing)
            if len(self._known) > _REMEMBERED:
                self._known.clear()
            for user_id in missing:  # an unknown user briefly: the events may bring them soon
                row = found.get(user_id)
                expiry = now + (self._ttl if row else min(self._ttl, UNKNOWN_TTL))
                self._known[user_id] = fresh[user_id] = (expiry, row)
        return {i: row for i, (_expiry, row) in fresh.items() if row is not None}
