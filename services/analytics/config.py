"""The analytics service's settings (ZENTRY_* variables; see README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from services.analytics.product.cardinality import Caps
from services.analytics.product.tracking import Limits
from services.kit.profiles import ProfileSettings
from services.kit.settings import ConfigError, Env, ServiceSettings

DEFAULT_PORT = 50055


@dataclass(frozen=True)
class AnalyticsSettings:
    service: ServiceSettings
    #: How long raw client events (and the per-minute counts) are kept; rollups stay.
    raw_retention: timedelta
    #: What TrackEvents accepts (batch size, how old or how far ahead an event may be).
    limits: Limits
    #: Events applied per transaction, at most.
    batch_size: int
    #: How long rollups, sessions and visitor sketches are kept (dashboards look this far back).
    rollup_retention: timedelta = timedelta(days=400)
    #: Distinct names, property keys and values counted a day (product/cardinality.py).
    caps: Caps = field(default_factory=Caps)
    #: Seconds between retention sweeps.
    sweep_interval: float = 3600.0
    #: How the caller's own zone and goal are read from the user service (services.kit.profiles).
    profiles: ProfileSettings = field(default_factory=ProfileSettings)

    @classmethod
    def load(cls, env: Env | None = None) -> AnalyticsSettings:
        env = env or Env()
        limits = Limits(
            max_batch=env.int("ANALYTICS_MAX_BATCH", 500, minimum=1),
            max_age=timedelta(hours=env.int("ANALYTICS_MAX_EVENT_AGE_HOURS", 72, minimum=1)),
        )
        retention = timedelta(days=env.int("ANALYTICS_RAW_RETENTION_DAYS", 30, minimum=1))
        if retention <= limits.max_age:
            # Duplicates are caught against the raw events: keep them longer than
            # a resent event can be old.
            raise ConfigError(
                "ZENTRY_ANALYTICS_RAW_RETENTION_DAYS must be longer than "
                "ZENTRY_ANALYTICS_MAX_EVENT_AGE_HOURS"
            )
        rollup_retention = timedelta(
            days=env.int("ANALYTICS_ROLLUP_RETENTION_DAYS", 400, minimum=1)
        )
        if rollup_retention < retention:
            raise ConfigError(
                "ZENTRY_ANALYTICS_ROLLUP_RETENTION_DAYS must not be shorter than "
                "ZENTRY_ANALYTICS_RAW_RETENTION_DAYS"
            )
        return cls(
            service=ServiceSettings.load("analytics", DEFAULT_PORT, env),
            raw_retention=retention,
            rollup_retention=rollup_retention,
            caps=Caps(
                names=env.int("ANALYTICS_MAX_NAMES", Caps.names, minimum=1),
                keys=env.int("ANALYTICS_MAX_KEYS", Caps.keys, minimum=1),
                values=env.int("ANALYTICS_MAX_VALUES", Caps.values, minimum=1),
            ),
            limits=limits,
            batch_size=env.int("ANALYTICS_BATCH", 2000, minimum=1),
            sweep_interval=env.seconds("ANALYTICS_SWEEP_INTERVAL", 3600.0, positive=True),
            profiles=ProfileSettings.load(env),
        )
