"""Bounded tables: rows kept for a while, then swept on a timer, a small batch at a time.

A `Retention` names a table, its time column and how long a row is kept
after that time. `RetentionSweeper` deletes what is older, on a timer
(services.kit.periodic), in batches of at most `batch` rows, each its own
short transaction: a sweep never holds a lock for long, never deletes
millions of rows in one statement, and never competes with the writers for
more than a batch's rows. Each batch takes rows no other transaction holds
(`FOR UPDATE SKIP LOCKED`), so any number of instances may sweep at once:
they share the work, and none waits for another. Ages are measured on the
database's clock (`now()`), the clock that stamped the rows.

The first sweep runs one interval after the process starts, not at once. A
consumer that comes back after a long stop is first handed again what it
applied but had not committed (at most its last batches, fetched first), and
those events' records must still be there to be recognised: the delay leaves
that time, however long the stop was.

Each service names its retentions, and why each is safe, beside its settings
(docs/ARCHITECTURE.md has them all in one table).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.db import Database
from services.kit.periodic import Periodic
from services.kit.settings import Env

_log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class Retention:
    """Rows of `table` whose `column` (a timestamptz) is older than `keep` are deleted.

    The sweep reads `column < now() - keep`: the column wants an index (else each
    batch scans the table).
    """

    table: str
    column: str
    keep: timedelta

    def __post_init__(self) -> None:
        for name in (self.table, self.column):
            if not _NAME.match(name):  # spliced into SQL: code's own names only
                raise ValueError(f"not a plain SQL name: {name!r}")
        if self.keep <= timedelta(0):
            raise ValueError(f"{self.table}: a retention must be positive, got {self.keep}")

    def statement(self) -> str:
        """One batch: at most :limit expired rows no other transaction holds, deleted."""
        return (
            f"DELETE FROM {self.table} WHERE ctid = ANY(ARRAY("
            f"SELECT ctid FROM {self.table} WHERE {self.column} < now() - CAST(:keep AS interval)"
            " LIMIT :limit FOR UPDATE SKIP LOCKED))"
        )


async def sweep_batch(session: AsyncSession, retention: Retention, limit: int) -> int:
    """Delete up to `limit` of the table's expired rows; how many went."""
    result = await session.execute(
        text(retention.statement()), {"keep": retention.keep, "limit": limit}
    )
    return result.rowcount


#: The default of ZENTRY_PROCESSED_EVENTS_RETENTION_DAYS (see RetentionSettings).
PROCESSED_EVENTS_DAYS = 7


@dataclass(frozen=True)
class RetentionSettings:
    """What every service's sweeps share (ZENTRY_* variables; see README.md)."""

    #: Seconds between sweeps (and before the first).
    interval: float = 3600.0
    #: Rows a sweep deletes per transaction, at most.
    batch: int = 1000
    #: How long a consumer group's record of an applied event (processed_events) is kept.
    #: Safe because Kafka hands an event to a group again only while its offset is not
    #: committed: the group's last batches, seconds after they were applied, or when the
    #: group's consumers come back from a stop (the first sweep waits an interval after
    #: start, see the module). A re-driven dead letter is skipped by every group but the one
    #: that parked it, which never recorded it (services.kit.deadletters); a replay forgets
    #: the group's records and applies everything again. What is left is an outbox relay
    #: publishing a row again after all its service's instances were down for longer than
    #: this, which 7 days leaves well aside.
    processed_events: timedelta = timedelta(days=PROCESSED_EVENTS_DAYS)

    @classmethod
    def load(cls, env: Env | None = None) -> RetentionSettings:
        env = env or Env()
        return cls(
            interval=env.seconds("RETENTION_SWEEP_INTERVAL", 3600.0, positive=True),
            batch=env.int("RETENTION_SWEEP_BATCH", 1000, minimum=1),
            processed_events=timedelta(
                days=env.int("PROCESSED_EVENTS_RETENTION_DAYS", PROCESSED_EVENTS_DAYS, minimum=1)
            ),
        )

    def processed_events_retention(self) -> Retention:
        """The kit's ledger of applied events (services.kit.consumer), by when it was applied."""
        return Retention("processed_events", "processed_at", self.processed_events)


class RetentionSweeper(Periodic):
    """Sweeps `retentions` every `settings.interval` seconds, the first an interval after
    start; see the module. Runs where the tables' writers run."""

    def __init__(
        self, what: str, db: Database, retentions: Sequence[Retention], settings: RetentionSettings
    ):
        super().__init__(what, settings.interval, self.sweep, first_after=settings.interval)
        self._db = db
        self._retentions = list(retentions)
        self._batch = settings.batch

    async def sweep(self) -> dict[str, int]:
        """Delete every expired row, a batch per transaction; how many went, per table.

        Stops early (between batches) when the sweeper is stopped. Raises what the
        database raises (an outage is retried at the next turn by Periodic)."""
        gone: dict[str, int] = {}
        for retention in self._retentions:
            count = 0
            while not self.stopping:
                async with self._db.transaction() as session:
                    deleted = await sweep_batch(session, retention, self._batch)
                count += deleted
                if deleted < self._batch:
                    break
            gone[retention.table] = count
            if count:
                _log.info(
                    "retention sweep",
                    extra={
                        "table": retention.table,
                        "rows": count,
                        "kept_for": str(retention.keep),
                    },
                )
        return gone


def processed_events_sweeper(db: Database, settings: RetentionSettings) -> RetentionSweeper:
    """The sweep of the kit's ledger of applied events, for a service whose consumers keep
    one (a `Subscription`, or a `BatchSubscription` with `once`)."""
    return RetentionSweeper(
        "processed events sweep", db, [settings.processed_events_retention()], settings
    )
