"""Where the shared servers answer: the one place for their `ZENTRY_*` names and defaults.

Every host defaults to ZENTRY_HOST (127.0.0.1), so a process finds the local
servers with no configuration at all. infra.config extends these with what only
running the servers needs (controller ports, heap, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:  # settings imports this module; here Env is only a type
    from services.kit.settings import Env

#: ZENTRY_HOST's default: this machine's loopback.
LOCAL_HOST = "127.0.0.1"


def default_host(env: Env) -> str:
    """ZENTRY_HOST: where every server answers unless its own ZENTRY_<SERVER>_HOST is set."""
    return env.str("HOST", LOCAL_HOST)


def database_name(service: str) -> str:
    """The database a service owns: `zentry_<service>` (`user` alone is a reserved word)."""
    return f"zentry_{service}"


@dataclass(frozen=True)
class PostgresAddress:
    host: str
    port: int
    user: str
    password: str

    @classmethod
    def load(cls, env: Env) -> Self:
        return cls(
            env.str("POSTGRES_HOST", default_host(env)),
            env.port("POSTGRES_PORT", 5432),
            env.str("POSTGRES_USER", "zentry"),
            env.str("POSTGRES_PASSWORD", "zentry"),
        )

    def url(self, database: str) -> str:
        """The SQLAlchemy URL (psycopg 3) of one of its databases."""
        return (
            f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{database}"
        )


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int

    @classmethod
    def load(cls, env: Env) -> Self:
        return cls(env.str("REDIS_HOST", default_host(env)), env.port("REDIS_PORT", 6379))

    def url(self, db: int = 0) -> str:
        """redis-py's URL of one of its numbered databases."""
        return f"redis://{self.host}:{self.port}/{db}"


@dataclass(frozen=True)
class KafkaAddress:
    host: str
    port: int

    @classmethod
    def load(cls, env: Env, **more: Any) -> Self:
        """`more`: the fields a subclass adds."""
        return cls(env.str("KAFKA_HOST", default_host(env)), env.port("KAFKA_PORT", 9092), **more)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ConsulAddress:
    host: str
    http_port: int

    @classmethod
    def load(cls, env: Env, **more: Any) -> Self:
        """`more`: the fields a subclass adds."""
        return cls(
            env.str("CONSUL_HOST", default_host(env)), env.port("CONSUL_HTTP_PORT", 8500), **more
        )

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"


@dataclass(frozen=True)
class EnvoyAddress:
    """The gateway: Envoy's admin and its REST listener."""

    host: str
    admin_port: int
    gateway_port: int

    @classmethod
    def load(cls, env: Env) -> Self:
        return cls(
            env.str("ENVOY_HOST", default_host(env)),
            env.port("ENVOY_ADMIN_PORT", 9901),
            env.port("GATEWAY_PORT", 8080),
        )

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.admin_port}"


@dataclass(frozen=True)
class ZipkinAddress:
    """The trace collector and viewer (`make dev` runs a Zipkin server)."""

    host: str
    port: int

    @classmethod
    def load(cls, env: Env) -> Self:
        return cls(env.str("ZIPKIN_HOST", default_host(env)), env.port("ZIPKIN_PORT", 9411))

    @property
    def url(self) -> str:
        """Its UI and query API (/api/v2/...)."""
        return f"http://{self.host}:{self.port}"

    @property
    def spans_url(self) -> str:
        """Where spans are sent (Zipkin's JSON v2 API)."""
        return f"{self.url}/api/v2/spans"
