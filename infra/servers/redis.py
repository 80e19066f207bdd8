"""Redis from Debian's packages, with an append-only file so dev data survives a restart."""

from __future__ import annotations

import os
import shutil

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from infra.errors import InfraError
from infra.servers.base import Command, Port, Server


class Redis(Server):
    name = "redis"
    title = "Redis"

    def ports(self) -> list[Port]:
        return [Port("ZENTRY_REDIS_PORT", self.settings.redis.port)]

    def probe(self) -> None:
        client = redis.Redis(
            host=self.host,
            port=self.settings.redis.port,
            socket_timeout=2,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), retries=0),  # a probe answers now or counts as "not ready"
        )
        try:
            if not client.ping():
                raise RuntimeError("PING was not answered with PONG")
        finally:
            client.close()

    def command(self) -> Command:
        binary = os.environ.get("ZENTRY_REDIS_SERVER") or shutil.which("redis-server")
        if not binary:
            raise InfraError(
                "redis-server is not installed; run `make setup` (it installs Debian's "
                "redis-server package) or set ZENTRY_REDIS_SERVER to its path"
            )
        return Command(
            argv=[
                binary,
                "--bind", self.host,
                "--port", str(self.settings.redis.port),
                "--dir", str(self.data_dir),
                "--daemonize", "no",
                "--appendonly", "yes",
                # Feed timelines (up to 1000 ids) stay compact listpacks: ~50 bytes an item.
                "--zset-max-listpack-entries", "1024",
                "--save", "",
                "--logfile", "",
            ],
        )  # fmt: skip
