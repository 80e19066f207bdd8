"""The user service's settings (ZENTRY_* variables; see README.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.kit.settings import ConfigError, Env, ServiceSettings
from services.user.domain import CelebrityRule

DEFAULT_PORT = 50051


@dataclass(frozen=True)
class UserSettings:
    service: ServiceSettings
    jwt_private_key_file: Path
    token_ttl_seconds: int
    celebrity: CelebrityRule
    login_max_failures: int
    login_lockout_seconds: int
    #: Accounts one user may follow: bounds what a follow list makes the feed read and lock.
    max_following: int

    @classmethod
    def load(cls, env: Env | None = None) -> UserSettings:
        env = env or Env()
        promote = env.int("CELEBRITY_THRESHOLD", 10_000, minimum=1)
        demote = env.int("CELEBRITY_RELEASE_BELOW", max(1, promote * 9 // 10), minimum=1)
        if demote > promote:
            raise ConfigError(
                f"ZENTRY_CELEBRITY_RELEASE_BELOW ({demote}) must not exceed "
                f"ZENTRY_CELEBRITY_THRESHOLD ({promote})"
            )
        return cls(
            service=ServiceSettings.load("user", DEFAULT_PORT, env),
            jwt_private_key_file=env.file(
                "JWT_PRIVATE_KEY_FILE", "the PEM RSA private key that signs access tokens"
            ),
            token_ttl_seconds=env.int("TOKEN_TTL", 3600, minimum=60),
            celebrity=CelebrityRule(promote_at=promote, demote_below=demote),
            login_max_failures=env.int("LOGIN_MAX_FAILURES", 5, minimum=1),
            login_lockout_seconds=env.int("LOGIN_LOCKOUT", 900, minimum=1),
            max_following=env.int("MAX_FOLLOWING", 5000, minimum=1),
        )
