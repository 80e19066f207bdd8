"""Where the shared servers answer: the one place for their `ZENTRY_*` names and defaults.

Every host defaults to ZENTRY_HOST (127.0.0.1), so a process finds the local
servers with no configuration at all. infra.config extends these with what only
running the servers needs (controller ports, heap, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

if TYPE_CHECKING:  # settings imports this module; here Env is only a type
    from services.kit.settings import Env

#: ZENTRY_HOST's default: this machine's loopback.
LOCAL_HOST = "127.0.0.1"
#: The local servers' administrator, user and password alike (as PostgreSQL's `zentry`): the
#: default credentials of every client, so tools and tests work with no configuration. The
#: local mesh gives each service its own user instead (infra.credentials); production
#: gives every process its own from Secrets (k8s/README.md).
LOCAL_ADMIN = "zentry"
#: The local Consul's management token (its ACLs want a UUID); local, like LOCAL_ADMIN.
LOCAL_CONSUL_TOKEN = "7a656e74-7279-4c6f-8361-6c2d61646d69"


def default_host(env: Env) -> str:
    """ZENTRY_HOST: where every server answers unless its own ZENTRY_<SERVER>_HOST is set."""
    return env.str("HOST", LOCAL_HOST)


def database_name(service: str) -> str:
    """The database a service owns: `zentry_<service>` (`user` alone is a reserved word)."""
    return f"zentry_{service}"


@dataclass(frozen=True)
class PostgresAddress:
    """PostgreSQL, perhaps through a pooler, and PostgreSQL itself for what needs a session.

    Host and port may be a transaction pooler (PgBouncer, ZENTRY_POSTGRES_POOLER=transaction):
    each transaction may then run on another server connection, so nothing may outlive one:
    no prepared statements (services.kit.db turns them off), no session advisory lock, no
    LISTEN, no SET. Those few (migrations, the outbox relay's leader lock, LISTEN) connect
    to the session host and port (ZENTRY_POSTGRES_SESSION_HOST/_PORT), by default the same.
    """

    host: str
    port: int
    user: str
    password: str
    session_host: str
    session_port: int

    @classmethod
    def load(cls, env: Env, **more: Any) -> Self:
        """`more`: the fields a subclass adds."""
        host = env.str("POSTGRES_HOST", default_host(env))
        port = env.port("POSTGRES_PORT", 5432)
        return cls(
            host,
            port,
            env.str("POSTGRES_USER", "zentry"),
            env.str("POSTGRES_PASSWORD", "zentry"),
            env.str("POSTGRES_SESSION_HOST", host),
            env.port("POSTGRES_SESSION_PORT", port),
            **more,
        )

    def url(self, database: str, *, session: bool = False) -> str:
        """The SQLAlchemy URL (psycopg 3) of one of its databases (`session`: not pooled)."""
        host, port = (self.session_host, self.session_port) if session else (self.host, self.port)
        login = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"postgresql+psycopg://{login}@{host}:{port}/{database}"


@dataclass(frozen=True)
class RedisAddress:
    """A Redis primary, or the Sentinels that know which server is the primary now.

    The client logs in as `username` (an ACL user; `default` for a server without ACLs,
    which accepts any password then). With `sentinels` set, host and port are unused:
    services.kit.redis_client asks the Sentinels for the primary of `sentinel_master`.
    """

    host: str
    port: int
    username: str
    password: str
    sentinels: tuple[tuple[str, int], ...]
    sentinel_master: str
    #: The Sentinels' login: a user that may only ask them where the primary is.
    sentinel_username: str
    sentinel_password: str
    #: How many replicas must hold a consumer's writes before it commits (services.kit.
    #: redis_client.durable); 0: none asked for (a lone Redis).
    min_replicas: int

    @classmethod
    def load(cls, env: Env) -> Self:
        return cls(
            env.str("REDIS_HOST", default_host(env)),
            env.port("REDIS_PORT", 6379),
            env.str("REDIS_USERNAME", LOCAL_ADMIN),
            env.str("REDIS_PASSWORD", LOCAL_ADMIN),
            _host_ports(env, "REDIS_SENTINELS"),
            env.str("REDIS_SENTINEL_MASTER", "zentry"),
            env.raw("REDIS_SENTINEL_USERNAME"),
            env.raw("REDIS_SENTINEL_PASSWORD"),
            env.int("REDIS_MIN_REPLICAS", 0),
        )

    def url(self, db: int = 0) -> str:
        """redis-py's URL of one of the primary's numbered databases, with the credentials."""
        login = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}@"
        return f"redis://{login}{self.host}:{self.port}/{db}"


#: How clients may reach Kafka (librdkafka's `security.protocol`).
KAFKA_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL", "PLAINTEXT")


@dataclass(frozen=True)
class KafkaAddress:
    """A Kafka bootstrap address and how to log in: SASL (SCRAM) as `username`, unless PLAINTEXT."""

    host: str
    port: int
    security_protocol: str
    sasl_mechanism: str
    username: str
    password: str
    #: The CA of the brokers' certificates (SASL_SSL); empty: the system's.
    ca_file: str

    @classmethod
    def load(cls, env: Env, **more: Any) -> Self:
        """`more`: the fields a subclass adds."""
        return cls(
            env.str("KAFKA_HOST", default_host(env)),
            env.port("KAFKA_PORT", 9092),
            env.choice("KAFKA_SECURITY_PROTOCOL", KAFKA_PROTOCOLS[0], KAFKA_PROTOCOLS),
            env.choice("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", ("SCRAM-SHA-512", "SCRAM-SHA-256")),
            env.str("KAFKA_USERNAME", LOCAL_ADMIN),
            env.str("KAFKA_PASSWORD", LOCAL_ADMIN),
            env.raw("KAFKA_CA_FILE"),
            **more,
        )

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def security(self) -> dict[str, str]:
        """librdkafka's settings that log a client in (none for PLAINTEXT)."""
        if self.security_protocol == "PLAINTEXT":
            return {"security.protocol": "PLAINTEXT"}
        config = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.username,
            "sasl.password": self.password,
        }
        if self.ca_file:
            config["ssl.ca.location"] = self.ca_file
        return config


def kafka_security() -> dict[str, str]:
    """This process's Kafka login (ZENTRY_KAFKA_*), to spread into a client's configuration:
    `{**kafka_security(), "bootstrap.servers": ...}`."""
    from services.kit.settings import Env  # settings imports this module

    return KafkaAddress.load(Env()).security()


@dataclass(frozen=True)
class ConsulAddress:
    """A Consul agent's HTTP API and the ACL token to send it (ignored where ACLs are off)."""

    host: str
    http_port: int
    token: str

    @classmethod
    def load(cls, env: Env, **more: Any) -> Self:
        """`more`: the fields a subclass adds."""
        return cls(
            env.str("CONSUL_HOST", default_host(env)),
            env.port("CONSUL_HTTP_PORT", 8500),
            env.str("CONSUL_TOKEN", LOCAL_CONSUL_TOKEN),
            **more,
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


def _host_ports(env: Env, name: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` (ZENTRY_<name>) as pairs; empty when unset."""
    from services.kit.settings import ConfigError  # settings imports this module

    pairs = []
    for item in filter(None, (part.strip() for part in env.raw(name).split(","))):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"ZENTRY_{name} must be host:port,host:port,...; got {item!r}")
        pairs.append((host, int(port)))
    return tuple(pairs)
