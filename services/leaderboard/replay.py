"""`python -m services.leaderboard.replay` (make replay-leaderboard): boards from the log.

The kit's replay (services/kit/replay.py) refuses while a leaderboard consumer
runs, empties the ledger, the scores, the directory and every board, and runs
both consumer groups from the beginning of zentry.sleep.events and
zentry.user.events. Boards are written to Redis again on their next query.
"""

from __future__ import annotations

import sys

from redis.asyncio import Redis

from services.kit import replay as kit_replay
from services.kit.db import Database
from services.leaderboard import app
from services.leaderboard.config import LeaderboardSettings


def read_models(
    settings: LeaderboardSettings, db: Database, redis: Redis, bootstrap: str, **names
) -> kit_replay.ReadModels:
    _boards, projector = app.parts(settings, db, redis)
    return kit_replay.ReadModels(
        app.consumers(settings, db, projector, bootstrap, **names),
        ["score_changes", "scores", "streak_runs", "streaks", "users", "follows"],
        keys="lb:*",
    )


replay = kit_replay.ServiceReplay(
    "leaderboard",
    __doc__,
    LeaderboardSettings.load,
    app.MIGRATIONS,
    read_models,
    afterwards="boards are written to Redis again when next asked for",
)

if __name__ == "__main__":
    sys.exit(replay.main())
