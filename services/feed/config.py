"""The feed service's settings (ZENTRY_* variables; see README.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from services.kit.settings import Env, ServiceSettings

DEFAULT_PORT = 50053


@dataclass(frozen=True)
class FeedSettings:
    service: ServiceSettings
    #: Entries a reader's timeline keeps (the oldest are trimmed); deeper pages come
    #: from PostgreSQL. Redis's zset-max-listpack-entries should exceed it (memory).
    timeline_length: int
    #: Readers who have not read their feed for this long are left out of fan-out;
    #: their timeline expires and is rebuilt when they come back.
    inactive_after: timedelta
    #: How long a read waits for a missing timeline to be rebuilt before answering
    #: from PostgreSQL with `rebuilding` set.
    rebuild_wait: float
    #: Timelines per Redis script call in a fan-out (all calls go in one round trip).
    fanout_batch: int

    @classmethod
    def load(cls, env: Env | None = None) -> FeedSettings:
        env = env or Env()
        return cls(
            service=ServiceSettings.load("feed", DEFAULT_PORT, env),
            timeline_length=env.int("FEED_TIMELINE_LENGTH", 1000, minimum=10),
            inactive_after=timedelta(days=env.int("FEED_INACTIVE_DAYS", 30, minimum=1)),
            rebuild_wait=env.seconds("FEED_REBUILD_WAIT", 1.0),
            fanout_batch=env.int("FEED_FANOUT_BATCH", 500, minimum=1),
        )
