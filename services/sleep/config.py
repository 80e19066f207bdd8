"""The sleep service's settings (ZENTRY_* variables; see README.md)."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.profiles import ProfileSettings
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

    @classmethod
    def load(cls, env: Env | None = None) -> SleepSettings:
        env = env or Env()
        return cls(
            service=ServiceSettings.load("sleep", DEFAULT_PORT, env),
            user_lookup_timeout=env.seconds("USER_LOOKUP_TIMEOUT", 2.0, positive=True),
            profiles=ProfileSettings.load(env),
            abandon_interval=env.seconds("ABANDON_INTERVAL", 60.0, positive=True),
        )
