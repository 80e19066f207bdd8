"""Redis from Debian's packages, with an append-only file so dev data survives a restart.

Clients log in (AUTH): the ACL file, written on every start, has the administrator
(LOCAL_ADMIN, for tools and tests; `default` too, behind the same password, see
acl_file) and one user per service, who may touch only that service's keys
(infra.credentials).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from infra import credentials
from infra.config import Settings
from infra.errors import InfraError
from infra.servers.base import Command, Port, Server

#: What a service's user may run, on its own keys only: reads, writes, MULTI, connection
#: commands (WAIT among them), TIME (the log-in guard's script asks it), and scripts by EVAL
#: and EVALSHA; not FUNCTION or SCRIPT FLUSH (server-wide), nor anything dangerous (FLUSHALL,
#: CONFIG, KEYS, DEBUG...). k8s/README.md gives production's users the same rules.
SERVICE_COMMANDS = (
    "resetchannels -@all +@read +@write +@keyspace +@transaction +@connection +time "
    "+eval +evalsha +eval_ro +evalsha_ro +script|load +script|exists -function -@dangerous"
)


class Redis(Server):
    name = "redis"
    title = "Redis"

    def ports(self) -> list[Port]:
        return [Port("ZENTRY_REDIS_PORT", self.settings.redis.port)]

    def probe(self) -> None:
        client = redis.Redis(
            host=self.host,
            port=self.settings.redis.port,
            username=self.settings.redis.username,
            password=self.settings.redis.password,
            socket_timeout=2,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), retries=0),  # a probe answers now or counts as "not ready"
        )
        try:
            if not client.ping():
                raise RuntimeError("PING was not answered with PONG")
        except redis.AuthenticationError as error:
            raise RuntimeError(
                f"it answers but refuses the login of {self.settings.redis.username!r} ({error}): "
                "a Redis started before logins, or with others; `make infra-down`, then up"
            ) from None
        finally:
            client.close()

    def prepare(self) -> None:
        super().prepare()
        self.acl_file.write_text(acl_file(self.settings))
        os.chmod(self.acl_file, 0o600)

    @property
    def acl_file(self) -> Path:
        return self.data_dir / "users.acl"

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
                "--aclfile", str(self.acl_file),
                "--save", "",
                "--logfile", "",
            ],
        )  # fmt: skip


def acl_file(settings: Settings) -> str:
    """Redis's ACL file: passwords as SHA-256 (`#<hex>`), so the file holds none of them.
    The administrator is the user infra's settings log in as (ZENTRY_REDIS_USERNAME)."""
    admin = settings.redis
    secret = _sha256(admin.password)
    lines = [
        # Not `off`: Redis 7.0 replays a MULTI's commands from the append-only file as
        # `default` and, were it off, drops them without a word (redis/redis#14541). So it
        # is a second name of the administrator, behind the same password.
        f"user default on #{secret} ~* &* +@all",
        f"user {admin.username} on #{secret} ~* &* +@all",
    ]
    for service, login in sorted(credentials.logins(settings).items()):
        if service in credentials.REDIS_KEYS:
            lines.append(
                f"user {service} on #{_sha256(login.password)} "
                f"~{credentials.REDIS_KEYS[service]} {SERVICE_COMMANDS}"
            )
    return "\n".join(lines) + "\n"


def _sha256(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()
