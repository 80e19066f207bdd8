"""The gateway's settings: addresses from the kit's, the rest from ZENTRY_GATEWAY_*."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.kit import settings
from services.kit.addresses import ConsulAddress, EnvoyAddress, ZipkinAddress
from services.kit.settings import TOKEN_AUDIENCE, TOKEN_ISSUER, ConfigError, Env, TlsFiles

DESCRIPTOR_SET = settings.CHECKOUT / "gen" / "zentry.descriptor.pb"
OPENAPI_DOCUMENT = settings.CHECKOUT / "gen" / "openapi.json"
#: Methods whose calls each client address may make only so often (a token bucket per
#: address): the setting's name (ZENTRY_GATEWAY_CLIENT_<NAME>) and its default a minute.
#: Log-ins and sign-ups each cost a password hash; the analytics intake is anonymous.
CLIENT_LIMITED = {
    "zentry.user.v1.UserService.CreateSession": ("LOG_INS", 20),
    "zentry.user.v1.UserService.CreateUser": ("SIGN_UPS", 10),
    "zentry.analytics.v1.ProductAnalyticsService.TrackEvents": ("EVENTS", 600),
}
#: The environment that lifts every per-client limit: for the bench's and chaos's load,
#: which comes from one address.
NO_CLIENT_LIMITS = {
    f"ZENTRY_GATEWAY_CLIENT_{name}": "1000000" for name, _default in CLIENT_LIMITED.values()
}


@dataclass(frozen=True)
class GatewaySettings:
    host: str  # where Envoy itself reaches the gateway and its admin (loopback)
    listen_host: str  # where the gateway listener binds (0.0.0.0 in a container)
    port: int
    admin_port: int
    config_dir: Path  # bootstrap, LDS and CDS files Envoy watches
    eds_dir: Path  # one EDS file per upstream, written by the endpoint feed
    descriptor_set: Path
    openapi_document: Path  # served at /openapi.json, inlined into the listener
    docs_dir: Path  # Swagger UI's files, which Envoy reads to serve /docs
    web_dir: Path  # the web app's built files, which Envoy reads to serve / (gateway.webapp)
    consul_url: str
    #: The endpoint feed's ACL token: it reads the catalog, nothing more.
    consul_token: str
    jwt_issuer: str
    jwt_audience: str
    cors_origins: tuple[str, ...]
    max_request_bytes: int
    rate_limit_per_second: int
    rate_limit_burst: int
    #: Calls one client address may make a minute, by method name (see CLIENT_LIMITED).
    client_limits: dict[str, int]
    #: The secret the gateway adds to every request it forwards (services.kit.clients).
    secret_file: Path
    route_timeout_seconds: float
    max_connections: int
    #: The Zipkin collector Envoy sends its spans to, host:port; empty: Envoy traces nothing.
    trace_collector: str
    #: Percent of requests that start a trace (a caller's own trace context is dropped).
    trace_sampling: float
    #: A listener that serves only Envoy's /stats/prometheus (0: none; its admin has them).
    metrics_port: int
    #: Mutual TLS to the services (ZENTRY_GATEWAY_TLS_CERT_FILE, _KEY_FILE, _CA_FILE: Envoy's
    #: client certificate, its key, the CA); None: plaintext. Paths where Envoy runs.
    upstream_tls: TlsFiles | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def bootstrap_file(self) -> Path:
        return self.config_dir / "bootstrap.json"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/.well-known/jwks.json"

    @classmethod
    def load(
        cls,
        env: Env | None = None,
        *,
        envoy: EnvoyAddress | None = None,
        consul: ConsulAddress | None = None,
        run_dir: Path | None = None,
        tools_dir: Path | None = None,
    ) -> GatewaySettings:
        """Read from `env`; infra passes the addresses and folders it already holds.

        Raises ConfigError naming a variable that is wrong.
        """
        env = env or Env()
        envoy = envoy or EnvoyAddress.load(env)
        consul = consul or ConsulAddress.load(env)
        run_dir = run_dir or settings.run_dir(env)
        tools_dir = tools_dir or settings.tools_dir(env)
        origins = env.str("GATEWAY_CORS_ORIGINS", "http://localhost:3000,http://127.0.0.1:3000")
        config_dir = env.path("GATEWAY_CONFIG_DIR", run_dir / "envoy")
        return cls(
            host=envoy.host,
            listen_host=env.str("GATEWAY_LISTEN_HOST", envoy.host),
            port=envoy.gateway_port,
            admin_port=envoy.admin_port,
            config_dir=config_dir,
            eds_dir=env.path("GATEWAY_EDS_DIR", config_dir / "eds"),
            descriptor_set=Path(env.str("GATEWAY_DESCRIPTOR_SET", str(DESCRIPTOR_SET))),
            openapi_document=env.path("GATEWAY_OPENAPI_DOCUMENT", OPENAPI_DOCUMENT),
            docs_dir=env.path("GATEWAY_DOCS_DIR", tools_dir / "share" / "swagger-ui"),
            web_dir=env.path("GATEWAY_WEB_DIR", tools_dir / "share" / "web"),
            consul_url=consul.http_url,
            consul_token=consul.token,
            jwt_issuer=env.str("JWT_ISSUER", TOKEN_ISSUER),
            jwt_audience=env.str("JWT_AUDIENCE", TOKEN_AUDIENCE),
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            max_request_bytes=env.int("GATEWAY_MAX_REQUEST_BYTES", 1024 * 1024, minimum=1024),
            rate_limit_per_second=env.int("GATEWAY_RATE_LIMIT", 1000, minimum=1),
            rate_limit_burst=env.int("GATEWAY_RATE_BURST", 2000, minimum=1),
            client_limits={
                method: env.int(f"GATEWAY_CLIENT_{name}", default, minimum=1)
                for method, (name, default) in CLIENT_LIMITED.items()
            },
            secret_file=env.path("GATEWAY_SECRET_FILE", run_dir / "secrets" / "gateway"),
            route_timeout_seconds=env.seconds("GATEWAY_TIMEOUT", 15.0),
            max_connections=env.int("GATEWAY_MAX_CONNECTIONS", 10_000, minimum=1),
            trace_collector=_trace_collector(env),
            trace_sampling=_percent(env, "GATEWAY_TRACE_SAMPLING", 100.0),
            metrics_port=env.port("GATEWAY_METRICS_PORT", 0, zero_picks_free=True),
            upstream_tls=TlsFiles.load(env, "GATEWAY_TLS", must_exist=False),
        )


def _trace_collector(env: Env) -> str:
    """ZENTRY_GATEWAY_TRACE_COLLECTOR: host:port, or `off`; by default the local Zipkin."""
    zipkin = ZipkinAddress.load(env)
    value = env.str("GATEWAY_TRACE_COLLECTOR", f"{zipkin.host}:{zipkin.port}")
    if value == "off":
        return ""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"ZENTRY_GATEWAY_TRACE_COLLECTOR must be host:port or off, got {value!r}")
    return value


def _percent(env: Env, name: str, default: float) -> float:
    raw = env.str(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise ConfigError(f"ZENTRY_{name} must be a percentage from 0 to 100, got {raw!r}")
    return value
