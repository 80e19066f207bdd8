"""Typed settings read once from `ZENTRY_*` environment variables at start.

The names are the ones `infra` reads (see README.md); the servers' addresses
and their defaults are in services.kit.addresses. A value that is wrong or
missing stops the process at start with a message naming the variable.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.kit.addresses import (
    ConsulAddress,
    KafkaAddress,
    PostgresAddress,
    RedisAddress,
    database_name,
    default_host,
)

#: The checkout (/app in the image): its `gen/`, and the `.run/` and `.tools/` of local runs.
CHECKOUT = Path(__file__).resolve().parents[2]
#: The issuer and audience of access tokens (ZENTRY_JWT_ISSUER, ZENTRY_JWT_AUDIENCE).
TOKEN_ISSUER = "zentry"
TOKEN_AUDIENCE = "zentry-api"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class Env:
    """Reads `ZENTRY_<NAME>` variables with types and defaults."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        self._environ = os.environ if environ is None else environ

    def raw(self, name: str) -> str:
        return self._environ.get(f"ZENTRY_{name}", "").strip()

    def str(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def required(self, name: str, why: str) -> str:
        value = self.raw(name)
        if not value:
            raise ConfigError(f"ZENTRY_{name} must be set: {why}")
        return value

    def int(self, name: str, default: int, *, minimum: int = 0) -> int:
        raw = self.str(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"ZENTRY_{name} must be a whole number, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"ZENTRY_{name} must be at least {minimum}, got {raw!r}")
        return value

    def port(self, name: str, default: int, *, zero_picks_free: bool = False) -> int:
        """A TCP port; 0 ("any free port") only for a port this process listens on."""
        raw = self.str(name, str(default))
        low = 0 if zero_picks_free else 1
        if not raw.isdigit() or not low <= int(raw) <= 65535:
            free = " (0 picks a free one)" if zero_picks_free else ""
            raise ConfigError(
                f"ZENTRY_{name} must be a TCP port between {low} and 65535{free}, got {raw!r}"
            )
        return int(raw)

    def seconds(self, name: str, default: float, *, positive: bool = False) -> float:
        raw = self.str(name, str(default))
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if value < 0 or (positive and value == 0):
            least = "> 0" if positive else ">= 0"
            raise ConfigError(f"ZENTRY_{name} must be a number of seconds {least}, got {raw!r}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.str(name, default)
        if value not in choices:
            raise ConfigError(f"ZENTRY_{name} must be one of {', '.join(choices)}; got {value!r}")
        return value

    def path(self, name: str, default: Path) -> Path:
        """Made absolute, but symlinks kept: the path may name another machine's (a pod's) files."""
        return Path(os.path.abspath(self.str(name, str(default))))

    def file(self, name: str, why: str) -> Path:
        path = Path(self.required(name, why))
        if not path.is_file():
            raise ConfigError(f"ZENTRY_{name} names {path}, which is not a readable file")
        return path


@dataclass(frozen=True)
class TlsFiles:
    """Mutual TLS: this process's certificate and key (PEM) and the CA that signs every
    certificate of the mesh (services.kit.tls makes gRPC credentials of them).

    ZENTRY_TLS_CERT_FILE, ZENTRY_TLS_KEY_FILE and ZENTRY_TLS_CA_FILE: all three set, a
    service serves only TLS clients with a certificate from the CA, and its own calls
    present its certificate and check the callee's; none set, plaintext. The gateway
    reads its own three (prefix GATEWAY_TLS: ZENTRY_GATEWAY_TLS_CERT_FILE, ...).
    """

    cert_file: Path
    key_file: Path
    ca_file: Path

    @classmethod
    def load(cls, env: Env, prefix: str = "TLS", *, must_exist: bool = True) -> TlsFiles | None:
        """None when none of the three is set. Raises ConfigError naming what is missing
        when only some are, or (`must_exist`) a file that is not there; `must_exist`
        False is for paths on another machine (a pod's, rendered into its config)."""
        names = {part: f"{prefix}_{part}_FILE" for part in ("CERT", "KEY", "CA")}
        given = {part: env.raw(name) for part, name in names.items()}
        if not any(given.values()):
            return None
        missing = [f"ZENTRY_{names[part]}" for part, value in given.items() if not value]
        if missing:
            every = ", ".join(f"ZENTRY_{name}" for name in names.values())
            raise ConfigError(
                f"{' and '.join(missing)} must be set too: mutual TLS needs all of {every} "
                "(the certificate, its key and the CA), or none of them for plaintext"
            )
        why = "a PEM file of mutual TLS"
        paths = {
            part: env.file(name, why) if must_exist else env.path(name, Path())
            for part, name in names.items()
        }
        return cls(paths["CERT"], paths["KEY"], paths["CA"])


#: What one instance runs (services.kit.boot): the API, the consumers, or both.
ROLES = ("all", "api", "consumer")


@dataclass(frozen=True)
class ServiceSettings:
    """What every service needs: where it listens and where the shared servers are."""

    service: str
    role: str
    host: str
    port: int
    #: Where /metrics is served (services.kit.metrics); 0 picks a free port.
    metrics_port: int
    advertise_host: str
    instance_id: str
    postgres_dsn: str
    #: Where the outbox relay's leader lock and LISTEN, and migrations, connect: PostgreSQL
    #: itself, where postgres_dsn may be a transaction pooler (ZENTRY_POSTGRES_SESSION_HOST).
    postgres_session_dsn: str
    redis: RedisAddress
    kafka_bootstrap: str
    consul_url: str
    #: The ACL token this instance registers itself with (ZENTRY_CONSUL_TOKEN).
    consul_token: str
    jwt_public_key_file: Path
    #: The secret the gateway adds to each request; unset, no gateway header is believed.
    gateway_secret_file: Path | None
    jwt_issuer: str
    jwt_audience: str
    shutdown_grace: float
    drain_delay: float
    log_level: str
    #: Where spans go (services.kit.telemetry); both unset, none are recorded.
    otlp_endpoint: str
    zipkin_endpoint: str
    #: Mutual TLS for its gRPC server and clients (ZENTRY_TLS_*); None: plaintext.
    tls: TlsFiles | None = None

    @classmethod
    def load(cls, service: str, default_port: int, env: Env | None = None) -> ServiceSettings:
        env = env or Env()
        host = default_host(env)
        # ZENTRY_PORT is for containers, where every service listens on the same port.
        port = env.port(
            f"{service.upper()}_PORT",
            env.port("PORT", default_port, zero_picks_free=True),
            zero_picks_free=True,
        )
        return cls(
            service=service,
            role=env.choice("ROLE", "all", ROLES),
            host=host,
            port=port,
            metrics_port=env.port("METRICS_PORT", 0, zero_picks_free=True),
            advertise_host=env.str("ADVERTISE_HOST", host),
            instance_id=env.str(
                "INSTANCE_ID",
                f"{service}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            ),
            postgres_dsn=postgres_dsn(service, env),
            postgres_session_dsn=postgres_dsn(service, env, session=True),
            redis=RedisAddress.load(env),
            kafka_bootstrap=kafka_bootstrap(env),
            consul_url=ConsulAddress.load(env).http_url,
            consul_token=ConsulAddress.load(env).token,
            jwt_public_key_file=env.file(
                "JWT_PUBLIC_KEY_FILE", "the PEM public key that verifies access tokens"
            ),
            gateway_secret_file=(
                env.file("GATEWAY_SECRET_FILE", "the secret the gateway adds to requests")
                if env.raw("GATEWAY_SECRET_FILE")
                else None
            ),
            jwt_issuer=env.str("JWT_ISSUER", TOKEN_ISSUER),
            jwt_audience=env.str("JWT_AUDIENCE", TOKEN_AUDIENCE),
            shutdown_grace=env.seconds("SHUTDOWN_GRACE", 10.0),
            drain_delay=env.seconds("DRAIN_DELAY", 1.0),
            log_level=env.str("LOG_LEVEL", "INFO").upper(),
            otlp_endpoint=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip(),
            zipkin_endpoint=os.environ.get("OTEL_EXPORTER_ZIPKIN_ENDPOINT", "").strip(),
            tls=TlsFiles.load(env),
        )


def kafka_bootstrap(env: Env | None = None) -> str:
    """Where Kafka answers, from ZENTRY_KAFKA_HOST/PORT (ZENTRY_HOST by default)."""
    return KafkaAddress.load(env or Env()).bootstrap_servers


def postgres_dsn(service: str, env: Env | None = None, *, session: bool = False) -> str:
    """The SQLAlchemy URL of the database `service` owns (`zentry_<service>` by default);
    `session`: PostgreSQL's own address, never a transaction pooler's."""
    env = env or Env()
    return PostgresAddress.load(env).url(
        env.str(f"{service.upper()}_DATABASE", database_name(service)), session=session
    )


@dataclass(frozen=True)
class PoolSettings:
    """Each process's connections to PostgreSQL (services.kit.db), from the environment.

    In production the sum over every pod of `size + overflow` must fit what the pooler
    accepts (k8s/README.md does the sum for the autoscalers' maxima).
    """

    size: int
    overflow: int
    #: Off behind a transaction pooler: a statement prepared on one server connection is
    #: unknown on the next (ZENTRY_POSTGRES_POOLER=transaction).
    prepared_statements: bool

    @classmethod
    def load(cls, env: Env | None = None) -> PoolSettings:
        env = env or Env()
        size = env.int("DB_POOL_SIZE", 10, minimum=1)
        pooler = env.choice("POSTGRES_POOLER", "none", ("none", "session", "transaction"))
        return cls(size, env.int("DB_MAX_OVERFLOW", size), pooler != "transaction")


def run_dir(env: Env) -> Path:
    """ZENTRY_RUN_DIR: where local runs keep data, logs and generated config (`.run/`)."""
    return env.path("RUN_DIR", CHECKOUT / ".run")


def tools_dir(env: Env) -> Path:
    """ZENTRY_TOOLS_DIR: where the pinned tools are installed (`.tools/`)."""
    return env.path("TOOLS_DIR", CHECKOUT / ".tools")
