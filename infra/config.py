"""Addresses, paths and limits of the local infrastructure, read once from the environment.

Every value has a working local default and can be overridden by an environment
variable of the same name as the field, prefixed `ZENTRY_` (see README.md).
Pointing a host at another machine, or a port at a server that already runs,
makes `infra up` use that server instead of starting its own. Where the servers
answer, and the run and tools folders, are the kit's (services.kit.addresses,
services.kit.settings); this adds what only running the servers needs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.errors import InfraError
from services.kit.addresses import (
    ConsulAddress,
    EnvoyAddress,
    KafkaAddress,
    PostgresAddress,
    RedisAddress,
    ZipkinAddress,
    database_name,
)
from services.kit.roster import SERVICES
from services.kit.settings import CHECKOUT, ConfigError, Env, run_dir, tools_dir

REPO_DIR = CHECKOUT

#: Every service owns a PostgreSQL database (`database_name`), which `infra up` creates.
SERVICES_WITH_DATABASE = SERVICES


@dataclass(frozen=True)
class PostgresSettings(PostgresAddress):
    #: Where the local PgBouncer (transaction mode) listens; the mesh's services go through it.
    pooler_port: int

    @property
    def databases(self) -> tuple[str, ...]:
        return tuple(database_name(s) for s in SERVICES_WITH_DATABASE)

    def dsn(self, database: str) -> str:
        """libpq's connection string (psycopg's), where url() is SQLAlchemy's."""
        return (
            f"host={self.host} port={self.port} user={self.user} "
            f"password={self.password} dbname={database} connect_timeout=3"
        )


@dataclass(frozen=True)
class KafkaSettings(KafkaAddress):
    controller_port: int
    heap: str
    #: A second listener, advertised at `proxy_port` where `make chaos` puts a TCP proxy:
    #: clients that bootstrap through the proxy are told to stay on it.
    proxied_port: int
    proxy_port: int


@dataclass(frozen=True)
class ConsulSettings(ConsulAddress):
    dns_port: int
    server_port: int
    serf_lan_port: int
    serf_wan_port: int


@dataclass(frozen=True)
class Settings:
    repo_dir: Path
    run_dir: Path
    tools_dir: Path
    ready_timeout: float
    java: str
    go: str
    mvn: str
    chromium: str  # the browser the web app's tests drive
    postgres: PostgresSettings
    redis: RedisAddress
    kafka: KafkaSettings
    consul: ConsulSettings
    envoy: EnvoyAddress
    zipkin: ZipkinAddress
    zipkin_heap: str

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
    return Settings(
        repo_dir=REPO_DIR,
        run_dir=run_dir(env),
        tools_dir=tools_dir(env),
        ready_timeout=env.seconds("READY_TIMEOUT", 120.0, positive=True),
        java=env.str("JAVA", _java_from_java_home(os.environ.get("JAVA_HOME"))),
        go=env.str("GO", "go"),
        mvn=env.str("MVN", "mvn"),
        chromium=env.str("CHROMIUM", "/usr/bin/chromium"),
        postgres=PostgresSettings.load(env, pooler_port=env.port("POSTGRES_POOLER_PORT", 6432)),
        redis=RedisAddress.load(env),
        kafka=KafkaSettings.load(
            env,
            controller_port=env.port("KAFKA_CONTROLLER_PORT", 9093),
            heap=env.str("KAFKA_HEAP", "768m"),
            proxied_port=env.port("KAFKA_PROXIED_PORT", 9094),
            proxy_port=env.port("KAFKA_PROXY_PORT", 9095),
        ),
        consul=ConsulSettings.load(
            env,
            dns_port=env.port("CONSUL_DNS_PORT", 8600),
            server_port=env.port("CONSUL_SERVER_PORT", 8300),
            serf_lan_port=env.port("CONSUL_SERF_LAN_PORT", 8301),
            serf_wan_port=env.port("CONSUL_SERF_WAN_PORT", 8302),
        ),
        envoy=EnvoyAddress.load(env),
        zipkin=ZipkinAddress.load(env),
        zipkin_heap=env.str("ZIPKIN_HEAP", "512m"),
    )


def _java_from_java_home(java_home: str | None) -> str:
    return str(Path(java_home) / "bin" / "java") if java_home else "java"
