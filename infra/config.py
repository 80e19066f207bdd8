"""Addresses, paths and limits of the local infrastructure, read once from the environment.

Every value has a working local default and can be overridden by an environment
variable of the same name as the field, prefixed `ZENTRY_` (see README.md).
Pointing a host at another machine, or a port at a server that already runs,
makes `infra up` use that server instead of starting its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.errors import InfraError
from services.kit.settings import ConfigError, Env

REPO_DIR = Path(__file__).resolve().parent.parent

#: The services that own a PostgreSQL database each (ARCHITECTURE.md, "Services").
SERVICES_WITH_DATABASE = ("user", "sleep", "feed", "leaderboard", "analytics")


def database_name(service: str) -> str:
    """The database a service owns: `zentry_<service>` (`user` alone is a reserved word)."""
    return f"zentry_{service}"


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    user: str
    password: str

    @property
    def databases(self) -> tuple[str, ...]:
        return tuple(database_name(s) for s in SERVICES_WITH_DATABASE)

    def dsn(self, database: str) -> str:
        return (
            f"host={self.host} port={self.port} user={self.user} "
            f"password={self.password} dbname={database} connect_timeout=3"
        )


@dataclass(frozen=True)
class RedisSettings:
    host: str
    port: int


@dataclass(frozen=True)
class KafkaSettings:
    host: str
    port: int
    controller_port: int
    heap: str
    #: A second listener, advertised at `proxy_port` where `make chaos` puts a TCP proxy:
    #: clients that bootstrap through the proxy are told to stay on it.
    proxied_port: int = 9094
    proxy_port: int = 9095

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ConsulSettings:
    host: str
    http_port: int
    dns_port: int
    server_port: int
    serf_lan_port: int
    serf_wan_port: int

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"


@dataclass(frozen=True)
class EnvoySettings:
    host: str
    admin_port: int
    gateway_port: int

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.admin_port}"


@dataclass(frozen=True)
class Settings:
    repo_dir: Path
    run_dir: Path
    tools_dir: Path
    ready_timeout: float
    java: str
    go: str
    mvn: str
    postgres: PostgresSettings
    redis: RedisSettings
    kafka: KafkaSettings
    consul: ConsulSettings
    envoy: EnvoySettings

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def pid_dir(self) -> Path:
        return self.run_dir / "pids"

    def log_file(self, server: str) -> Path:
        return self.log_dir / f"{server}.log"


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings once; raises InfraError naming the variable that is wrong."""
    try:
        return _load(Env(os.environ if environ is None else environ))
    except ConfigError as error:
        raise InfraError(str(error)) from None


def _load(env: Env) -> Settings:
    host = env.str("HOST", "127.0.0.1")
    return Settings(
        repo_dir=REPO_DIR,
        run_dir=env.path("RUN_DIR", REPO_DIR / ".run"),
        tools_dir=env.path("TOOLS_DIR", REPO_DIR / ".tools"),
        ready_timeout=env.seconds("READY_TIMEOUT", 120.0, positive=True),
        java=env.str("JAVA", _java_from_java_home(os.environ.get("JAVA_HOME"))),
        go=env.str("GO", "go"),
        mvn=env.str("MVN", "mvn"),
        postgres=PostgresSettings(
            host=env.str("POSTGRES_HOST", host),
            port=env.port("POSTGRES_PORT", 5432),
            user=env.str("POSTGRES_USER", "zentry"),
            password=env.str("POSTGRES_PASSWORD", "zentry"),
        ),
        redis=RedisSettings(
            host=env.str("REDIS_HOST", host),
            port=env.port("REDIS_PORT", 6379),
        ),
        kafka=KafkaSettings(
            host=env.str("KAFKA_HOST", host),
            port=env.port("KAFKA_PORT", 9092),
            controller_port=env.port("KAFKA_CONTROLLER_PORT", 9093),
            heap=env.str("KAFKA_HEAP", "768m"),
            proxied_port=env.port("KAFKA_PROXIED_PORT", 9094),
            proxy_port=env.port("KAFKA_PROXY_PORT", 9095),
        ),
        consul=ConsulSettings(
            host=env.str("CONSUL_HOST", host),
            http_port=env.port("CONSUL_HTTP_PORT", 8500),
            dns_port=env.port("CONSUL_DNS_PORT", 8600),
            server_port=env.port("CONSUL_SERVER_PORT", 8300),
            serf_lan_port=env.port("CONSUL_SERF_LAN_PORT", 8301),
            serf_wan_port=env.port("CONSUL_SERF_WAN_PORT", 8302),
        ),
        envoy=EnvoySettings(
            host=env.str("ENVOY_HOST", host),
            admin_port=env.port("ENVOY_ADMIN_PORT", 9901),
            gateway_port=env.port("GATEWAY_PORT", 8080),
        ),
    )


def _java_from_java_home(java_home: str | None) -> str:
    return str(Path(java_home) / "bin" / "java") if java_home else "java"
