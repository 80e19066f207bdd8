"""Closes nights left open longer than a night lasts as abandoned, on a timer.

Every API instance sweeps; each sweep takes the overdue rows no other holds
(SKIP LOCKED), so instances share the work and never close a night twice. A
night is also closed when its owner starts another (services.sleep.actions),
so the timer only bounds how long an overdue night may still look open.
"""

from __future__ import annotations

import logging

from services.kit.periodic import Periodic
from services.sleep.actions import SleepActions

_log = logging.getLogger(__name__)


def abandoner(actions: SleepActions, interval: float) -> Periodic:
    async def sweep() -> None:
        if closed := await actions.abandon_overdue():
            _log.info("nights abandoned", extra={"nights": closed})

    return Periodic("abandoning overdue nights", interval, sweep)
