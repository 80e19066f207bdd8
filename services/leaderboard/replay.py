"""`python -m services.leaderboard.replay` (make replay-leaderboard): boards from the log.

The kit's replay (services/kit/replay.py) refuses while a leaderboard consumer
runs, empties the ledger, the scores, the directory and every board with
`kit_replay.empty`, and runs both consumer groups from the beginning of
zentry.sleep.events and zentry.user.events. Boards are written to Redis again
on their next query.
"""

from __future__ import annotations

import sys

from services.kit import replay as kit_replay
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
    async with kit_replay.stores(dsn, redis_url, app.MIGRATIONS) as (db, redis):
        _boards, projector = app.parts(settings, db, redis)
        return await kit_replay.replay(
            bootstrap,
            {groups[0]: sleep_topic, groups[1]: user_topic},
            wipe=lambda: kit_replay.empty(
                db, redis, ["score_changes", "scores", "users", "follows"], "lb:*"
            ),
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


def main() -> int:
    return kit_replay.main(
        "python -m services.leaderboard.replay",
        __doc__,
        LeaderboardSettings.load,
        replay,
        "boards are written to Redis again when next asked for",
    )


if __name__ == "__main__":
    sys.exit(main())
