"""`python -m services.feed.replay` (make replay-feed): rebuild the feed from Kafka's first event.

The kit's replay (services/kit/replay.py) refuses while a feed consumer runs,
empties the read models (`kit_replay.empty`), and runs the feed's consumer
groups from the beginning of zentry.user.events and zentry.sleep.events.
The wipe keeps when readers were last active, since no event records it.
Timelines are built again on each reader's next read, from the rebuilt
tables, exactly as after a Redis flush.
"""

from __future__ import annotations

import sys

from services.feed import app
from services.feed.config import FeedSettings
from services.feed.projector import ENTRIES_GROUP, GRAPH_GROUP
from services.kit import replay as kit_replay
from services.kit.consumer import ConsumerRunner
from services.kit.events import SLEEP_EVENTS, USER_EVENTS
from services.kit.replay import ReplayRefused, ReplayReport

__all__ = ["ReplayRefused", "replay"]


async def replay(
    settings: FeedSettings,
    *,
    dsn: str,
    redis_url: str,
    bootstrap: str,
    user_topic: str = USER_EVENTS,
    sleep_topic: str = SLEEP_EVENTS,
    groups: tuple[str, str] = (GRAPH_GROUP, ENTRIES_GROUP),
    progress=lambda _line: None,
) -> ReplayReport:
    async with kit_replay.stores(dsn, redis_url, app.MIGRATIONS) as (db, redis):
        _timelines, projector, _reader = app.parts(settings, db, redis)
        return await kit_replay.replay(
            bootstrap,
            {groups[0]: user_topic, groups[1]: sleep_topic},
            wipe=lambda: kit_replay.empty(
                db, redis, ["authors", "follows", "entries", "redis_effects"], "feed:*", groups
            ),
            runners=lambda: [
                ConsumerRunner(db, bootstrap, s)
                for s in projector.subscriptions(user_topic, sleep_topic, groups)
            ],
            progress=progress,
        )


def main() -> int:
    return kit_replay.main(
        "python -m services.feed.replay",
        __doc__,
        FeedSettings.load,
        replay,
        "timelines are rebuilt on each reader's next read",
    )


if __name__ == "__main__":
    sys.exit(main())
