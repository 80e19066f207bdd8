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
    #: How long a refresh token works if not used (each refresh gives a new one).
    refresh_ttl_seconds: int
    celebrity: CelebrityRule
    login_max_failures: int
    login_lockout_seconds: int
    #: Log-in attempts on one account from all addresses within a lockout, at most.
    login_account_ceiling: int
    #: Memory argon2 may take at once (MiB): how many passwords are hashed in parallel.
    password_memory_mib: int
    #: Seconds a sign-up or log-in waits for a hashing slot before a 429.
    password_wait: float
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
            token_ttl_seconds=env.int("TOKEN_TTL", 900, minimum=60),
            refresh_ttl_seconds=env.int("REFRESH_TTL", 30 * 86400, minimum=60),
            celebrity=CelebrityRule(promote_at=promote, demote_below=demote),
            login_max_failures=env.int("LOGIN_MAX_FAILURES", 5, minimum=1),
            login_lockout_seconds=env.int("LOGIN_LOCKOUT", 900, minimum=1),
            login_account_ceiling=env.int("LOGIN_ACCOUNT_CEILING", 100, minimum=1),
            password_memory_mib=env.int("PASSWORD_MEMORY_MIB", 256, minimum=64),
            password_wait=env.seconds("PASSWORD_WAIT", 2.0),
            max_following=env.int("MAX_FOLLOWING", 5000, minimum=1),
        )
