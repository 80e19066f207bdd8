"""Who counts as an active reader: fan-out writes only to them.

A reader's timeline expires after `inactive_after` without a read (Redis
TTL, renewed by each read), and the readers table remembers each reader's last
read so fan-out can leave the others out before it touches Redis. That table
is written at most once per `TOUCH_EVERY` per reader and instance, so fan-out
looks back `SLACK` further than the expiry: every timeline that still exists
belongs to a reader it includes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

TOUCH_EVERY = timedelta(hours=1)
SLACK = timedelta(days=1)
_REMEMBERED = 100_000  # readers whose last touch this instance keeps in memory


class Activity:
    def __init__(self, inactive_after: timedelta):
        self.inactive_after = inactive_after
        self._touched: dict[str, datetime] = {}

    def active_since(self, now: datetime) -> datetime:
        """Readers who read after this may still have a timeline."""
        return now - self.inactive_after - SLACK

    def due(self, reader_id: str, now: datetime) -> bool:
        """Whether this read should record the reader's activity (and then it is recorded)."""
        last = self._touched.get(reader_id)
        if last is not None and now - last < TOUCH_EVERY:
            return False
        if len(self._touched) >= _REMEMBERED:
            self._touched.clear()
        self._touched[reader_id] = now
        return True

    def forget(self, reader_id: str) -> None:
        """The recorded touch did not commit: try again on the next read."""
        self._touched.pop(reader_id, None)
