"""`python -m services.feed.replay` (make replay-feed): rebuild the feed from Kafka's first event.

The kit's replay (services/kit/replay.py) refuses while a feed consumer runs,
empties the read models, and runs the feed's consumer groups from the
beginning of zentry.user.events and zentry.sleep.events. The wipe keeps when
readers were last active, since no event records it. Timelines are built
again on each reader's next read, from the rebuilt tables, exactly as after a
Redis flush.
"""

from __future__ import annotations

import sys

from redis.asyncio import Redis

from services.feed import app
from services.feed.config import FeedSettings
from services.kit import replay as kit_replay
from services.kit.db import Database
from services.kit.replay import ReplayRefused

__all__ = ["ReplayRefused", "replay"]


def read_models(
    settings: FeedSettings, db: Database, redis: Redis, bootstrap: str, **names
) -> kit_replay.ReadModels:
    _timelines, projector, _reader = app.parts(settings, db, redis)
    return kit_replay.ReadModels(
        app.consumers(db, projector, bootstrap, **names),
        ["authors", "follows", "entries", "redis_effects"],
        keys="feed:*",
    )


replay = kit_replay.ServiceReplay(
    "feed",
    __doc__,
    FeedSettings.load,
    app.MIGRATIONS,
    read_models,
    afterwards="timelines are rebuilt on each reader's next read",
)

if __name__ == "__main__":
    sys.exit(replay.main())
