"""The leaderboard service's settings (ZENTRY_* variables; see README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from services.kit.profiles import ProfileSettings
from services.kit.retention import PROCESSED_EVENTS_DAYS, RetentionSettings
from services.kit.settings import ConfigError, Env, ServiceSettings
from services.leaderboard.domain import parse_min_nights

DEFAULT_PORT = 50054


@dataclass(frozen=True)
class LeaderboardSettings:
    service: ServiceSettings
    #: Nights a user needs in a window to appear on its average-duration board.
    min_nights: dict[str, int]
    #: How long a past window's boards stay in Redis after it ends (rebuilt when asked).
    retention: timedelta
    #: Sleep events applied per transaction, at most.
    batch_size: int
    #: Seconds a process remembers a user's name and time zone.
    directory_ttl: float = 30.0
    #: How the caller's own zone is read from the user service (services.kit.profiles).
    profiles: ProfileSettings = field(default_factory=ProfileSettings)
    #: The sweeps' interval and batch (services.kit.retention).
    sweeps: RetentionSettings = field(default_factory=RetentionSettings)
    #: How long the ledger (score_changes) remembers a change, by when it was recorded: the
    #: scores' group's processed events, and as safe for the same reasons (see
    #: RetentionSettings.processed_events): Kafka hands an event again only while its offset
    #: is not committed, a re-driven dead letter reaches only the group that parked it
    #: (which never recorded it), and a replay empties the ledger and writes it again.
    ledger_retention: timedelta = timedelta(days=PROCESSED_EVENTS_DAYS)

    @classmethod
    def load(cls, env: Env | None = None) -> LeaderboardSettings:
        env = env or Env()
        try:
            min_nights = parse_min_nights(env.str("LEADERBOARD_MIN_NIGHTS", ""))
        except ValueError as error:
            raise ConfigError(f"ZENTRY_LEADERBOARD_MIN_NIGHTS: {error}") from None
        return cls(
            service=ServiceSettings.load("leaderboard", DEFAULT_PORT, env),
            min_nights=min_nights,
            retention=timedelta(days=env.int("LEADERBOARD_RETENTION_DAYS", 14, minimum=1)),
            batch_size=env.int("LEADERBOARD_BATCH", 2000, minimum=1),
            directory_ttl=env.seconds("LEADERBOARD_DIRECTORY_TTL", 30.0),
            profiles=ProfileSettings.load(env),
            sweeps=RetentionSettings.load(env),
            ledger_retention=timedelta(
                days=env.int("LEADERBOARD_LEDGER_RETENTION_DAYS", PROCESSED_EVENTS_DAYS, minimum=1)
            ),
        )
