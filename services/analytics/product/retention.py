"""Sweeps what is kept only for a while: raw events, per-minute counts and old salts after
the raw retention; rollups, sessions, visitor sketches and admitted labels after the
(longer) rollup retention.

A timer (the Assembly's timers: where the consumers run). Each instance sweeps on its own in small
transactions; deleting what another instance deleted already costs nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from services.analytics.product import store
from services.kit.db import Database
from services.kit.periodic import Periodic

_log = logging.getLogger(__name__)


class Sweeper(Periodic):
    def __init__(
        self, db: Database, raw_retention: timedelta, rollup_retention: timedelta, interval: float
    ):
        super().__init__("retention sweep", interval, self.sweep)
        self._db = db
        self._retention = raw_retention
        self._rollup_retention = rollup_retention

    async def sweep(self, now: datetime | None = None) -> int:
        """Delete everything past its time, a chunk per transaction; how many rows went."""
        now = now or datetime.now(UTC)
        gone = 0
        while not self.stopping:
            async with self._db.transaction() as session:
                # Today's and yesterday's salts stay: a request at midnight may still use either.
                chunk = await store.sweep_chunk(
                    session,
                    now - self._retention,
                    now.date() - timedelta(days=1),
                    now - self._rollup_retention,
                )
            gone += chunk
            if chunk == 0:
                break
        if gone:
            _log.info("retention sweep", extra={"rows": gone})
        return gone
