"""`python -m services.leaderboard.replay` (make replay-leaderboard): boards from the log.

The kit's replay (services/kit/replay.py) refuses while a leaderboard consumer
runs, empties the ledger, the scores, the directory and every board with
`_wipe` below, and runs both consumer groups from the beginning of
zentry.sleep.events and zentry.user.events. Boards are written to Redis again
on their next query.
"""

from __future__ import annotations

import asyncio
import sys

from redis.asyncio import Redis
from sqlalchemy import text

from services.kit import replay as kit_replay
from services.kit.db import Database, migrate
from services.kit.events import SLEEP_EVENTS, USER_EVENTS
from services.kit.replay import ReplayReport
from services.leaderboard import app
from services.leaderboard.config import LeaderboardSettings
from services.leaderboard.projector import DIRECTORY_GROUP, SCORES_GROUP


async def replay(
    settings: LeaderboardSettings,
    *,
    dsn: str,
    redis_url: str,
    bootstrap: str,
    user_topic: str = USER_EVENTS,
    sleep_topic: str = SLEEP_EVENTS,
    groups: tuple[str, str] = (SCORES_GROUP, DIRECTORY_GROUP),
    progress=lambda _line: None,
) -> ReplayReport:
    await asyncio.to_thread(migrate, dsn, app.MIGRATIONS)
    db, redis = Database(dsn), app.redis_client(redis_url)
    try:
        _boards, projector, _reader = app.parts(settings, db, redis)
        return await kit_replay.replay(
            bootstrap,
            {groups[0]: sleep_topic, groups[1]: user_topic},
            wipe=lambda: _wipe(db, redis, groups),
            runners=lambda: app.consumers(
                settings,
                db,
                projector,
                user_topic=user_topic,
                sleep_topic=sleep_topic,
                groups=groups,
                bootstrap=bootstrap,
            ),
            progress=progress,
        )
    finally:
        await redis.aclose()
        await db.dispose()


async def _wipe(db: Database, redis: Redis, groups) -> None:
    async with db.transaction() as session:
        await session.execute(text("TRUNCATE score_changes, scores, users, follows"))
        await session.execute(
            text("DELETE FROM processed_events WHERE consumer = ANY(:groups)"),
            {"groups": list(groups)},
        )
    await kit_replay.unlink_matching(redis, "lb:*")


def main() -> int:
    def run(settings: LeaderboardSettings, progress):
        service = settings.service
        return replay(
            settings,
            dsn=service.postgres_dsn,
            redis_url=service.redis_url,
            bootstrap=service.kafka_bootstrap,
            progress=progress,
        )

    return kit_replay.main(
        "python -m services.leaderboard.replay",
        __doc__,
        LeaderboardSettings.load,
        run,
        "boards are written to Redis again when next asked for",
    )


if __name__ == "__main__":
    sys.exit(main())
