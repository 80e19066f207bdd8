"""How much the model tests run (tests/integration/test_*_model.py).

`ZENTRY_MODEL_EXAMPLES` sequences (default 40) of up to `ZENTRY_MODEL_STEPS`
steps each (default 40). The same sequences every run, so CI never meets a
new case by chance; `ZENTRY_MODEL_EXPLORE=1` draws new ones.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SETTINGS = settings(
    max_examples=int(os.environ.get("ZENTRY_MODEL_EXAMPLES", "40")),
    stateful_step_count=int(os.environ.get("ZENTRY_MODEL_STEPS", "40")),
    derandomize=os.environ.get("ZENTRY_MODEL_EXPLORE") != "1",
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
