"""Closes nights left open longer than a night lasts as abandoned, on a timer.

Every API instance sweeps; each sweep takes the overdue rows no other holds
(SKIP LOCKED), so instances share the work and never close a night twice. A
night is also closed when its owner starts another (services.sleep.actions),
so the timer only bounds how long an overdue night may still look open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.kit.errors import OUTAGES
from services.sleep.actions import SleepActions

_log = logging.getLogger(__name__)


class Abandoner:
    def __init__(self, actions: SleepActions, interval: float):
        self._actions = actions
        self._interval = interval
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                if closed := await self._actions.abandon_overdue():
                    _log.info("nights abandoned", extra={"nights": closed})
            except OUTAGES as error:
                _log.warning("abandoning overdue nights failed, trying again later: %r", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
