"""Network faults between the services and PgBouncer, PostgreSQL, Redis and Kafka (Toxiproxy).

The chaos mesh's instances reach each server through a proxy of its own
(`PROXIES`: name, where the proxy listens, where it forwards), so a toxic
on a proxy strikes every instance at once and nothing else on the machine.
Kafka's clients reconnect to the broker's advertised listener, so they go
through the broker's PROXIED listener, advertised at the proxy's port
(infra/servers/kafka.py). Toxiproxy is driven over its HTTP API.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from infra.config import Settings

API_PORT = 8474


@dataclass(frozen=True)
class Proxy:
    name: str
    listen: int  # where the instances connect
    upstream: str  # host:port where the server answers
    env: str  # the variable that points the instances at it


def proxies(settings: Settings) -> list[Proxy]:
    """As the local mesh runs: queries through PgBouncer, sessions to PostgreSQL itself."""
    pg, redis, kafka = settings.postgres, settings.redis, settings.kafka
    return [
        Proxy("postgres", 15432, f"{pg.host}:{pg.pooler_port}", "ZENTRY_POSTGRES_PORT"),
        Proxy("postgres-session", 15433, f"{pg.host}:{pg.port}", "ZENTRY_POSTGRES_SESSION_PORT"),
        Proxy("redis", 16379, f"{redis.host}:{redis.port}", "ZENTRY_REDIS_PORT"),
        Proxy("kafka", kafka.proxy_port, f"{kafka.host}:{kafka.proxied_port}", "ZENTRY_KAFKA_PORT"),
    ]


def binary(settings: Settings) -> str:
    """The server `make setup` built (infra/install.py)."""
    return str(settings.tools_dir / "bin" / "toxiproxy")


#: A fault on PostgreSQL's way strikes the pooled and the session connections alike.
STRUCK_TOGETHER = {"postgres": ("postgres", "postgres-session")}
#: What each network fault does: a toxic's type, its attributes, and how long it lasts.
TOXICS = {
    "latency": ({"latency": 400, "jitter": 200}, 6.0),
    "reset_peer": ({"timeout": 0}, 2.0),
    "timeout": ({"timeout": 0}, 4.0),  # a blackhole: nothing passes, nothing closes
}


class Network:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{API_PORT}", timeout=10)

    def command(self) -> list[str]:
        return [binary(self.settings), "-host", "127.0.0.1", "-port", str(API_PORT)]

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.api.get("/version").raise_for_status()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def create(self) -> dict[str, str]:
        """Every proxy, fresh; returns the environment that sends instances through them."""
        env = {}
        for proxy in proxies(self.settings):
            self.api.delete(f"/proxies/{proxy.name}")
            self.api.post(
                "/proxies",
                json={
                    "name": proxy.name,
                    "listen": f"127.0.0.1:{proxy.listen}",
                    "upstream": proxy.upstream,
                    "enabled": True,
                },
            ).raise_for_status()
            env[proxy.env] = str(proxy.listen)
        env["ZENTRY_POSTGRES_POOLER"] = "transaction"  # PgBouncer is behind `postgres`
        return env

    def strike(self, proxy: str, toxic: str) -> str:
        """Add the toxic to both directions of `proxy` (for `postgres`, of its sessions' too),
        keep it for its time, take it away."""
        attributes, seconds = TOXICS[toxic]
        added = []
        try:
            for target in STRUCK_TOGETHER.get(proxy, (proxy,)):
                for stream in ("upstream", "downstream"):
                    name = f"{toxic}-{stream}"
                    self.api.post(
                        f"/proxies/{target}/toxics",
                        json={
                            "name": name,
                            "type": toxic,
                            "stream": stream,
                            "attributes": attributes,
                        },
                    ).raise_for_status()
                    added.append(f"/proxies/{target}/toxics/{name}")
            time.sleep(seconds)
        finally:
            for toxic_path in added:
                self.api.delete(toxic_path)
        return f"{toxic} on {proxy} for {seconds:.0f} s"
