"""A background loop that does one thing every so often (an Assembly worker or timer).

An outage (services.kit.errors.OUTAGES) is logged and the thing is tried again
at the next turn; anything else is a bug, and ends the loop (and the process,
whose supervisor starts it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from services.kit.errors import OUTAGES

_log = logging.getLogger(__name__)


class Periodic:
    def __init__(
        self,
        what: str,
        interval: float,
        turn: Callable[[], Awaitable[object]],
        *,
        first_after: float = 0.0,
    ):
        self._what = what
        self._interval = interval
        self._first_after = first_after
        self._turn = turn
        self._stopping = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """`turn()` every `interval` seconds until `stop()`, the first `first_after` seconds
        after it is called."""
        if self._first_after:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._first_after)
        while not self._stopping.is_set():
            try:
                await self._turn()
            except OUTAGES as error:
                _log.warning("%s failed, trying again later: %r", self._what, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
