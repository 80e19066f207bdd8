"""The sleep service's settings (ZENTRY_* variables; see README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from services.kit.profiles import ProfileSettings
from services.kit.retention import RetentionSettings
from services.kit.settings import Env, ServiceSettings

DEFAULT_PORT = 50052


@dataclass(frozen=True)
class SleepSettings:
    service: ServiceSettings
    #: How long a directory miss may wait for the user service, per try.
    user_lookup_timeout: float
    #: How the caller's own zone is read from the user service (services.kit.profiles).
    profiles: ProfileSettings
    #: How often overdue open nights are closed as abandoned (services.sleep.abandoner).
    abandon_interval: float
    #: The sweeps' interval and batch, and how long processed events are kept
    #: (services.kit.retention says why that is safe).
    sweeps: RetentionSettings = field(default_factory=RetentionSettings)
    #: How long a request_id is remembered (create_requests): a retry within it gets the
    #: first call's night (or, if deleted since, is refused). Clients retry within seconds,
    #: or an app that was offline sends its queue within days. A retry after it is a new
    #: request: a CreateSleepEntry of a night still recorded is refused as overlapping it
    #: (FAILED_PRECONDITION, naming the entry), so a night is never recorded twice, but a
    #: night deleted since is recorded again; a StartSleepEntry while that night is open is
    #: refused the same way, and one whose planned end has passed is invalid.
    request_retention: timedelta = timedelta(days=7)

    @classmethod
    def load(cls, env: Env | None = None) -> SleepSettings:
        env = env or Env()
        return cls(
            service=ServiceSettings.load("sleep", DEFAULT_PORT, env),
            user_lookup_timeout=env.seconds("USER_LOOKUP_TIMEOUT", 2.0, positive=True),
            profiles=ProfileSettings.load(env),
            abandon_interval=env.seconds("ABANDON_INTERVAL", 60.0, positive=True),
            sweeps=RetentionSettings.load(env),
            request_retention=timedelta(days=env.int("SLEEP_REQUEST_RETENTION_DAYS", 7, minimum=1)),
        )
