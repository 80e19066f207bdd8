"""`make chaos`'s short profiles inside `make test`: a minute of load under faults.

Each runs `python -m chaos` as `make chaos` does (a mesh of its own, its faults,
then the audit of every read model) and passes when the audit found no
difference; its report is in the failure message and in `.run/logs/chaos*.log`.
The standard profile strikes every kind of fault once; the Redis failover
profile kills the primary of a Redis with a replica and Sentinels twice under
the load. Longer runs: `CHAOS_SECONDS=300 make chaos`.
"""

from __future__ import annotations

import os
import subprocess
import sys

from infra import config, lifecycle


def test_every_read_model_agrees_after_a_minute_of_load_under_faults():
    report = run_chaos("chaos.log", CHAOS_SECONDS=os.environ.get("CHAOS_SECONDS", "60"))
    assert "| feed |" in report and "read models agreed" in report


def test_feed_and_boards_answer_and_agree_through_redis_primary_failovers():
    report = run_chaos(
        "chaos-redis-failover.log", CHAOS_PROFILE="redis-failover", CHAOS_SECONDS="40"
    )
    assert report.count("| SIGKILL Redis primary |") == 2, report[-6000:]
    assert "reads that failed: 0" in report and "| feed | 200 |" in report
    assert "| feed |" in report and "| boards: " in report and "read models agreed" in report


def run_chaos(log_name: str, **knobs: str) -> str:
    """`python -m chaos` with `knobs`; returns its report, having asserted it passed."""
    settings = config.load()
    lifecycle.up(settings, lifecycle.servers(settings))
    log = settings.log_dir / log_name
    env = {**os.environ, **knobs}
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
    return report
