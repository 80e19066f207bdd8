"""The harness of the model tests (tests/integration/test_*_model.py), and how much they run.

`ZENTRY_MODEL_EXAMPLES` sequences (default 40) of up to `ZENTRY_MODEL_STEPS`
steps each (default 40). The same sequences every run, so CI never meets a
new case by chance; `ZENTRY_MODEL_EXPLORE=1` draws new ones.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test
from redis.asyncio import Redis

from services.kit.db import Database, migrate

SETTINGS = settings(
    max_examples=int(os.environ.get("ZENTRY_MODEL_EXAMPLES", "40")),
    stateful_step_count=int(os.environ.get("ZENTRY_MODEL_STEPS", "40")),
    derandomize=os.environ.get("ZENTRY_MODEL_EXPLORE") != "1",
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


class StoreMachine(RuleBasedStateMachine):
    """A state machine over a service's real PostgreSQL and Redis, run from a plain
    (synchronous) test on an event loop of its own; each sequence has its own clients."""

    sequences = checks = 0  # how much was run, for the test's own report

    def __init__(self, loop: asyncio.AbstractEventLoop, dsn: str, redis_url: str):
        super().__init__()
        self.loop = loop
        self.db = Database(dsn, pool_size=2)
        self.redis = Redis.from_url(redis_url)
        type(self).sequences += 1

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def checked(self) -> None:
        """An invariant calls this each time it has checked a step."""
        type(self).checks += 1

    def teardown(self) -> None:
        self.run(self.redis.aclose())
        self.run(self.db.dispose())


def run_model(machine: type[StoreMachine], dsn: str, migrations: Path, redis_url: str) -> None:
    """Migrate the test's database, run `machine`'s sequences, report how much was checked."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(asyncio.to_thread(migrate, dsn, migrations))
        run_state_machine_as_test(lambda: machine(loop, dsn, redis_url), settings=SETTINGS)
    finally:
        loop.close()
    print(f"{machine.__name__}: {machine.sequences} sequences, {machine.checks} checked steps")
    assert machine.checks >= SETTINGS.max_examples
