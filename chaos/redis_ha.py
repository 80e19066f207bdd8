"""A highly available Redis of a chaos run's own: a primary, a replica and three Sentinels.

The failover profile (`CHAOS_PROFILE=redis-failover`) points the mesh at these
Sentinels (ZENTRY_REDIS_SENTINELS) and asks every consumer to see its writes
on a replica before it commits (ZENTRY_REDIS_MIN_REPLICAS=1), as k8s/ runs
it. `fail_primary` SIGKILLs whichever server is the primary, waits for the
Sentinels to promote the other, then starts the killed one again, which they
turn into the new primary's replica; it returns once that replica is in sync.
Every server logs in like the local one (infra.servers.redis's ACL file); the
Sentinels want the administrator's password, but for the services' user, who may
only ask them where the primary is.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

from redis import Redis

from infra.config import Settings
from infra.errors import InfraError
from infra.mesh import Child, Mesh
from infra.processes import free_port, wait_until
from infra.servers.redis import acl_file

MASTER = "zentry"
QUORUM = 2
#: The Sentinels' user for the services: it may ask where the primary is, nothing else (no
#: SENTINEL SET, REMOVE or FAILOVER); k8s/base/infra/redis.yaml gives production's the same.
READER = "zentry-reader"
READER_RULES = (
    "-@all +sentinel|get-master-addr-by-name +sentinel|masters +sentinel|master "
    "+sentinel|sentinels +sentinel|replicas +sentinel|slaves +ping +hello +auth "
    "+client|setname"
)
#: How long a server may not answer before a Sentinel thinks it down: a busy two-core
#: machine can hold a live Redis past one second (k8s/ waits 5 s).
DOWN_AFTER_MS = 3000


class RedisHA:
    def __init__(self, settings: Settings, mesh: Mesh):
        self.settings = settings
        self.mesh = mesh
        self.folder = settings.run_dir / "chaos-redis"
        self.ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.servers: dict[int, Child] = {}
        self.reader_password = secrets.token_hex(16)

    @property
    def admin(self):
        return self.settings.redis

    def start(self) -> dict[str, str]:
        """Start them all (fresh data); returns the environment that points a service at them."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        (self.folder / "users.acl").write_text(acl_file(self.settings))
        primary, replica = self.ports
        self._start_server(primary)
        self._start_server(replica, replica_of=primary)
        self._wait_in_sync(replica)
        for port in self.sentinel_ports:
            self._start_sentinel(port, primary)
        _until(
            lambda: self._sentinels_agree(primary, replicas=1, sentinels=len(self.sentinel_ports)),
            "the Sentinels watching the chaos Redis",
            self.settings.log_file(f"chaos-sentinel-{self.sentinel_ports[0]}"),
        )
        return {
            "ZENTRY_REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports),
            "ZENTRY_REDIS_SENTINEL_MASTER": MASTER,
            "ZENTRY_REDIS_SENTINEL_USERNAME": READER,
            "ZENTRY_REDIS_SENTINEL_PASSWORD": self.reader_password,
            "ZENTRY_REDIS_MIN_REPLICAS": "1",
        }

    def primary(self) -> int:
        """The primary's port, as the first Sentinel that answers says."""
        for port in self.sentinel_ports:
            try:
                with self._client(port) as sentinel:
                    _host, answer = sentinel.execute_command(
                        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER
                    )
                    return int(answer)
            except Exception:
                continue
        raise InfraError("no Sentinel of the chaos Redis answers")

    def fail_primary(self) -> str:
        """SIGKILL the primary; the Sentinels promote its replica; the old one comes back as
        a replica. Returns what happened, with how long it took.

        The Sentinels may, in rare turns, promote the restarted one back (a Sentinel that saw
        the new primary slow to answer): whichever they settle on, this returns once one
        primary has the other in sync as its replica."""
        began = time.monotonic()
        old = self.primary()
        victim = self.servers.pop(old)
        self.mesh.stop(victim, signal.SIGKILL)
        (new,) = [port for port in self.ports if port != old]
        _until(lambda: self.primary() == new, "a Sentinel failover", victim.log, timeout=60)
        promoted = time.monotonic() - began
        self._start_server(old)
        _until(lambda: self._settled(), "one primary with its replica", victim.log, timeout=90)
        now = self.primary()
        (replica,) = [port for port in self.ports if port != now]
        self._wait_in_sync(replica)
        return (
            f"SIGKILL Redis primary :{old}; :{new} promoted after {promoted:.1f} s; "
            f"primary :{now} with :{replica} in sync after {time.monotonic() - began:.1f} s"
        )

    def _settled(self) -> bool:
        primary = self.primary()
        return self._sentinels_agree(primary, replicas=1, sentinels=len(self.sentinel_ports))

    # -- the processes -------------------------------------------------------------------

    def _start_server(self, port: int, replica_of: int | None = None) -> None:
        folder = self.folder / str(port)
        folder.mkdir(exist_ok=True)
        argv = [
            _redis_server(),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(folder),
            "--daemonize", "no",
            "--appendonly", "yes",
            "--save", "",
            "--aclfile", str(self.folder / "users.acl"),
            "--masteruser", self.admin.username,
            "--masterauth", self.admin.password,
            "--zset-max-listpack-entries", "1024",
        ]  # fmt: skip
        if replica_of is not None:
            argv += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.servers[port] = self.mesh.start_process(f"chaos-redis-{port}", argv)
        _until(lambda: self._ping(port), f"chaos Redis :{port}", self.servers[port].log)

    def _start_sentinel(self, port: int, primary: int) -> None:
        password = self.admin.password
        config = self.folder / f"sentinel-{port}.conf"
        config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {port}",
                    f"dir {self.folder}",
                    f"requirepass {password}",
                    f"user {READER} on >{self.reader_password} {READER_RULES}",
                    f"sentinel sentinel-pass {password}",
                    f"sentinel monitor {MASTER} 127.0.0.1 {primary} {QUORUM}",
                    f"sentinel auth-user {MASTER} {self.admin.username}",
                    f"sentinel auth-pass {MASTER} {password}",
                    f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {MASTER} 10000",
                    "",
                ]
            )
        )
        self.mesh.start_process(
            f"chaos-sentinel-{port}", [_redis_server(), str(config), "--sentinel"]
        )

    # -- asking them ---------------------------------------------------------------------

    def _client(self, port: int) -> Redis:
        sentinel = port in self.sentinel_ports
        return Redis(
            port=port,
            username=None if sentinel else self.admin.username,
            password=self.admin.password,
            socket_timeout=1,
            socket_connect_timeout=1,
            decode_responses=True,
        )

    def _ping(self, port: int) -> bool:
        with self._client(port) as client:
            return bool(client.ping())

    def _wait_in_sync(self, replica: int) -> None:
        def synced() -> bool:
            with self._client(replica) as client:
                info = client.info("replication")
                return info["role"] == "slave" and info["master_link_status"] == "up"

        _until(synced, f"chaos Redis :{replica} in sync", self.servers[replica].log)

    def _sentinels_agree(self, primary: int, replicas: int, sentinels: int) -> bool:
        """Every Sentinel names `primary` and sees its replicas and the other Sentinels."""
        for port in self.sentinel_ports:
            with self._client(port) as sentinel:
                fields = sentinel.sentinel_master(MASTER)
                if (
                    int(fields["port"]) != primary
                    or "down" in fields["flags"]
                    or int(fields["num-slaves"]) < replicas
                    or int(fields["num-other-sentinels"]) < sentinels - 1
                ):
                    return False
        return True


def _redis_server() -> str:
    binary = shutil.which("redis-server")
    if not binary:
        raise InfraError("redis-server is not installed; run `make setup`")
    return binary


def _until(check: Callable[[], bool], what: str, log: Path, timeout: float = 30) -> None:
    """Wait until `check()` is true (a failed or false check means "not yet")."""

    def probe() -> None:
        if not check():
            raise RuntimeError("not yet")

    wait_until(probe, what=what, timeout=timeout, log_file=log)
