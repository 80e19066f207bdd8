"""The feed service's settings (ZENTRY_* variables; see README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from services.kit.retention import RetentionSettings
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
    #: WatchFeed (services.feed.watching): streams one instance holds, and one reader there.
    #: Past about 2,000 open streams grpc-python's server starts cancelling new ones (see
    #: bench.watch): refusing them first says so (RESOURCE_EXHAUSTED) and keeps the rest.
    max_watchers: int = 2000
    watchers_per_reader: int = 4
    #: Changes a stream holds for a slow client before it is told to read its feed again.
    watch_queue: int = 256
    #: Seconds between heartbeats of a quiet stream, between re-reads of whom its reader
    #: follows, and before the server ends a stream (the client resumes from its cursor).
    watch_heartbeat: float = 15.0
    watch_refollow: float = 30.0
    watch_max_duration: float = 3600.0
    #: The sweeps' interval and batch, and how long processed events (the graph's group's)
    #: are kept (services.kit.retention says why that is safe).
    sweeps: RetentionSettings = field(default_factory=RetentionSettings)

    @classmethod
    def load(cls, env: Env | None = None) -> FeedSettings:
        env = env or Env()
        return cls(
            service=ServiceSettings.load("feed", DEFAULT_PORT, env),
            timeline_length=env.int("FEED_TIMELINE_LENGTH", 1000, minimum=10),
            inactive_after=timedelta(days=env.int("FEED_INACTIVE_DAYS", 30, minimum=1)),
            rebuild_wait=env.seconds("FEED_REBUILD_WAIT", 1.0),
            fanout_batch=env.int("FEED_FANOUT_BATCH", 500, minimum=1),
            max_watchers=env.int("FEED_MAX_WATCHERS", 2000, minimum=1),
            watchers_per_reader=env.int("FEED_WATCHERS_PER_READER", 4, minimum=1),
            watch_queue=env.int("FEED_WATCH_QUEUE", 256, minimum=1),
            watch_heartbeat=env.seconds("FEED_WATCH_HEARTBEAT", 15.0, positive=True),
            watch_refollow=env.seconds("FEED_WATCH_REFOLLOW", 30.0, positive=True),
            watch_max_duration=env.seconds("FEED_WATCH_MAX_DURATION", 3600.0, positive=True),
            sweeps=RetentionSettings.load(env),
        )
