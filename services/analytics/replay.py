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

from services.analytics import app
from services.analytics.config import AnalyticsSettings
from services.analytics.stats import projector
from services.analytics.stats.projector import Projector
from services.kit import replay as kit_replay
from services.kit.batch_consumer import BatchConsumerRunner
from services.kit.events import SLEEP_EVENTS, USER_EVENTS
from services.kit.replay import ReplayReport


async def replay(
    settings: AnalyticsSettings,
    *,
    dsn: str,
    redis_url: str,
    bootstrap: str,
    sleep_topic: str = SLEEP_EVENTS,
    user_topic: str = USER_EVENTS,
    group_suffix: str = "",
    progress=lambda _line: None,
) -> ReplayReport:
    groups = (
        projector.NIGHTS_GROUP + group_suffix,
        projector.SLEEPERS_GROUP + group_suffix,
    )
    async with kit_replay.stores(dsn, redis_url, app.MIGRATIONS) as (db, redis):
        return await kit_replay.replay(
            bootstrap,
            {groups[0]: sleep_topic, groups[1]: user_topic},
            wipe=lambda: kit_replay.empty(db, redis, ["entries", "nights", "sleepers"], None),
            runners=lambda: [
                BatchConsumerRunner(db, bootstrap, subscription, max_batch=settings.batch_size)
                for subscription in Projector().subscriptions(sleep_topic, user_topic, groups)
            ],
            progress=progress,
        )


def main() -> int:
    return kit_replay.main(
        "python -m services.analytics.replay",
        __doc__,
        AnalyticsSettings.load,
        replay,
        "statistics answer from the rebuilt nights at once",
    )


if __name__ == "__main__":
    sys.exit(main())
