"""The gateway's settings: addresses from infra's settings, limits from ZENTRY_GATEWAY_*."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra.config import Settings
from services.kit.settings import Env

REPO = Path(__file__).resolve().parent.parent
DESCRIPTOR_SET = REPO / "gen" / "zentry.descriptor.pb"


@dataclass(frozen=True)
class GatewaySettings:
    host: str  # where Envoy itself reaches the gateway and its admin (loopback)
    listen_host: str  # where the gateway listener binds (0.0.0.0 in a container)
    port: int
    admin_port: int
    config_dir: Path  # bootstrap, LDS and CDS files Envoy watches
    eds_dir: Path  # one EDS file per upstream, written by the endpoint feed
    descriptor_set: Path
    consul_url: str
    jwt_issuer: str
    jwt_audience: str
    cors_origins: tuple[str, ...]
    max_request_bytes: int
    rate_limit_per_second: int
    rate_limit_burst: int
    route_timeout_seconds: float
    max_connections: int

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
    def load(cls, infra: Settings, env: Env | None = None) -> GatewaySettings:
        env = env or Env()
        origins = env.str("GATEWAY_CORS_ORIGINS", "http://localhost:3000,http://127.0.0.1:3000")
        config_dir = env.path("GATEWAY_CONFIG_DIR", infra.run_dir / "envoy")
        return cls(
            host=infra.envoy.host,
            listen_host=env.str("GATEWAY_LISTEN_HOST", infra.envoy.host),
            port=infra.envoy.gateway_port,
            admin_port=infra.envoy.admin_port,
            config_dir=config_dir,
            eds_dir=env.path("GATEWAY_EDS_DIR", config_dir / "eds"),
            descriptor_set=Path(env.str("GATEWAY_DESCRIPTOR_SET", str(DESCRIPTOR_SET))),
            consul_url=infra.consul.http_url,
            jwt_issuer=env.str("JWT_ISSUER", "zentry"),
            jwt_audience=env.str("JWT_AUDIENCE", "zentry-api"),
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            max_request_bytes=env.int("GATEWAY_MAX_REQUEST_BYTES", 1024 * 1024, minimum=1024),
            rate_limit_per_second=env.int("GATEWAY_RATE_LIMIT", 1000, minimum=1),
            rate_limit_burst=env.int("GATEWAY_RATE_BURST", 2000, minimum=1),
            route_timeout_seconds=env.seconds("GATEWAY_TIMEOUT", 15.0),
            max_connections=env.int("GATEWAY_MAX_CONNECTIONS", 10_000, minimum=1),
        )
