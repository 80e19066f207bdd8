"""`python -m services.analytics.replay` (make replay-analytics): sleep statistics from the log.

The kit's replay (services/kit/replay.py) refuses while an analytics sleep
consumer runs, empties the entries, nights and sleepers, and runs both
groups from the beginning of zentry.sleep.events and zentry.user.events.

Product analytics is not replayed: its topic keeps raw events for 7 days
only, and its rollups outlive them on purpose (raw events are personal data
we do not keep). Its consumer group is left alone.
"""

from __future__ import annotations

import sys

from redis.asyncio import Redis

from services.analytics import app
from services.analytics.config import AnalyticsSettings
from services.kit import replay as kit_replay
from services.kit.db import Database


def read_models(
    settings: AnalyticsSettings, db: Database, redis: Redis, bootstrap: str, **names
) -> kit_replay.ReadModels:
    runners = app.stats_consumers(settings, db, bootstrap, **names)
    return kit_replay.ReadModels(runners, ["entries", "nights", "sleepers"])


replay = kit_replay.ServiceReplay(
    "analytics",
    __doc__,
    AnalyticsSettings.load,
    app.MIGRATIONS,
    read_models,
    afterwards="statistics answer from the rebuilt nights at once",
)

if __name__ == "__main__":
    sys.exit(replay.main())
