"""`make chaos`'s short profile inside `make test`: about a minute of load under faults.

It runs `python -m chaos` as `make chaos` does (a mesh of its own, every kind
of fault once, then the audit of every read model) and passes when the
audit found no difference; its report is in the failure message and in
`.run/logs/chaos.log`. Longer runs: `CHAOS_SECONDS=300 make chaos`.
"""

from __future__ import annotations

import os
import subprocess
import sys

from infra import config, lifecycle


def test_every_read_model_agrees_after_a_minute_of_load_under_faults():
    settings = config.load()
    lifecycle.up(settings, lifecycle.servers(settings))
    log = settings.log_dir / "chaos.log"
    env = {**os.environ, "CHAOS_SECONDS": os.environ.get("CHAOS_SECONDS", "60")}
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "chaos"],
            cwd=settings.repo_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=900,
        )
    report = log.read_text()
    assert done.returncode == 0, report[-6000:]
    assert "| feed |" in report and "read models agreed" in report
