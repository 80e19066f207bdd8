"""Retention settings, sweep statements, the sweep timer's first turn, and re-driven copies."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from services.feed.config import FeedSettings
from services.kit.periodic import Periodic
from services.kit.retention import Retention, RetentionSettings
from services.kit.settings import ConfigError, Env
from services.kit.topics import REDRIVEN_FOR_HEADER, redriven_for_another
from services.leaderboard.config import LeaderboardSettings
from services.sleep.config import SleepSettings

KEY = {"ZENTRY_JWT_PUBLIC_KEY_FILE": __file__}


def test_defaults_keep_a_week_and_sweep_hourly_in_small_batches():
    settings = RetentionSettings.load(Env({}))
    assert settings == RetentionSettings()
    assert settings.processed_events == timedelta(days=7)
    assert (settings.interval, settings.batch) == (3600.0, 1000)
    assert settings.processed_events_retention() == Retention(
        "processed_events", "processed_at", timedelta(days=7)
    )


def test_retention_settings_are_read_and_checked():
    settings = RetentionSettings.load(
        Env(
            {
                "ZENTRY_PROCESSED_EVENTS_RETENTION_DAYS": "14",
                "ZENTRY_RETENTION_SWEEP_INTERVAL": "60",
                "ZENTRY_RETENTION_SWEEP_BATCH": "50",
            }
        )
    )
    assert settings == RetentionSettings(60.0, 50, timedelta(days=14))
    for name, value in [
        ("PROCESSED_EVENTS_RETENTION_DAYS", "0"),
        ("RETENTION_SWEEP_INTERVAL", "0"),
        ("RETENTION_SWEEP_BATCH", "0"),
        ("PROCESSED_EVENTS_RETENTION_DAYS", "a week"),
    ]:
        with pytest.raises(ConfigError, match=f"ZENTRY_{name}"):
            RetentionSettings.load(Env({f"ZENTRY_{name}": value}))


def test_each_service_reads_its_retentions():
    env = {
        **KEY,
        "ZENTRY_SLEEP_REQUEST_RETENTION_DAYS": "2",
        "ZENTRY_LEADERBOARD_LEDGER_RETENTION_DAYS": "3",
        "ZENTRY_PROCESSED_EVENTS_RETENTION_DAYS": "4",
    }
    sleep = SleepSettings.load(Env(env))
    assert sleep.request_retention == timedelta(days=2)
    assert sleep.sweeps.processed_events == timedelta(days=4)
    assert FeedSettings.load(Env(env)).sweeps.processed_events == timedelta(days=4)
    assert LeaderboardSettings.load(Env(env)).ledger_retention == timedelta(days=3)
    defaults = SleepSettings.load(Env(KEY))
    assert defaults.request_retention == timedelta(days=7)
    assert LeaderboardSettings.load(Env(KEY)).ledger_retention == timedelta(days=7)
    with pytest.raises(ConfigError, match="ZENTRY_SLEEP_REQUEST_RETENTION_DAYS"):
        SleepSettings.load(Env({**KEY, "ZENTRY_SLEEP_REQUEST_RETENTION_DAYS": "0"}))


def test_a_retention_names_plain_sql_and_a_positive_time():
    with pytest.raises(ValueError, match="plain SQL name"):
        Retention("processed_events; DROP TABLE x", "processed_at", timedelta(days=1))
    with pytest.raises(ValueError, match="plain SQL name"):
        Retention("processed_events", "Processed At", timedelta(days=1))
    with pytest.raises(ValueError, match="positive"):
        Retention("processed_events", "processed_at", timedelta(0))


def test_a_batch_deletes_a_bounded_number_of_unlocked_expired_rows():
    statement = Retention("create_requests", "created_at", timedelta(days=7)).statement()
    assert statement.startswith("DELETE FROM create_requests WHERE ctid = ANY(ARRAY(")
    assert "WHERE created_at < now() - CAST(:keep AS interval)" in statement
    assert statement.endswith("LIMIT :limit FOR UPDATE SKIP LOCKED))")


def test_a_dead_letter_re_driven_for_another_group_is_not_this_groups():
    ours, theirs = [(REDRIVEN_FOR_HEADER, b"feed.graph")], [(REDRIVEN_FOR_HEADER, b"feed.entries")]
    assert not redriven_for_another(None, "feed.graph")
    assert not redriven_for_another([("traceparent", b"00-abc")], "feed.graph")
    assert not redriven_for_another(ours, "feed.graph")
    assert redriven_for_another([("traceparent", b"00-abc"), *theirs], "feed.graph")


async def test_the_first_turn_waits_first_after():
    turns: list[float] = []
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def turn() -> None:
        turns.append(loop.time() - started)

    waiting = Periodic("test", 0.05, turn, first_after=0.5)
    task = asyncio.create_task(waiting.run())
    await asyncio.sleep(0.05)
    assert turns == []  # not yet
    deadline = loop.time() + 10
    while not turns and loop.time() < deadline:
        await asyncio.sleep(0.05)
    waiting.stop()
    await asyncio.wait_for(task, 1)
    assert turns and turns[0] >= 0.5

    before = len(turns)
    stopped = Periodic("test", 0.05, turn, first_after=60)
    task = asyncio.create_task(stopped.run())
    await asyncio.sleep(0.05)
    stopped.stop()
    await asyncio.wait_for(task, 1)  # a stop during the first wait ends it at once
    assert len(turns) == before
