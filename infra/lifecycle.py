"""Bring the servers up, report on them, and take down what we started.

`up` starts every server that is not already answering, then waits for each to
be really ready (in parallel, since all were started first). A server that
already answers at its configured address is used as it is, whoever started it.
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from infra.config import Settings
from infra.errors import InfraError
from infra.processes import listener_of, port_is_free, port_is_open, wait_until
from infra.servers.base import Server
from infra.servers.consul import Consul
from infra.servers.envoy import Envoy
from infra.servers.kafka import Kafka
from infra.servers.pgbouncer import PgBouncer
from infra.servers.postgres import Postgres
from infra.servers.redis import Redis
from infra.servers.zipkin import Zipkin

SERVER_TYPES: tuple[type[Server], ...] = (
    Postgres,
    PgBouncer,
    Redis,
    Kafka,
    Consul,
    Zipkin,
    Envoy,
)
LOOPBACK = ("127.", "localhost", "::1")


@dataclass(frozen=True)
class Status:
    server: str
    state: str  # started | running | external | down | unhealthy
    address: str
    pid: int | None = None
    log: str = ""

    def line(self) -> str:
        origin = {
            "started": f"started, pid {self.pid}",
            "running": f"already running, pid {self.pid}",
            "external": "not ours: used as it is",
            "down": "not running",
            "unhealthy": f"pid {self.pid} does not answer",
        }[self.state]
        log = f"  log {self.log}" if self.pid else ""
        return f"{self.server:<10} {self.state:<9} {self.address:<21} {origin}{log}"


def servers(settings: Settings, names: list[str] | None = None) -> list[Server]:
    """The servers by name (all when `names` is empty); raises InfraError on an unknown name."""
    known = {cls.name: cls for cls in SERVER_TYPES}
    unknown = set(names or []) - set(known)
    if unknown:
        raise InfraError(f"unknown server {sorted(unknown)}; choose from {list(known)}")
    return [cls(settings) for cls in SERVER_TYPES if not names or cls.name in names]


def up(settings: Settings, chosen: list[Server]) -> list[Status]:
    """Start what is not running and wait until everything is ready; idempotent."""
    with _lock(settings):
        statuses = {server.name: _start(server) for server in chosen}
        for server in chosen:
            status = statuses[server.name]
            wait_until(
                server.probe,
                what=f"{server.title} at {server.address}",
                timeout=settings.ready_timeout,
                log_file=server.process.log_file,
                exit_code=server.process.exit_code,
            )
            server.after_ready()
            print(status.line(), flush=True)
        return list(statuses.values())


def down(settings: Settings, chosen: list[Server]) -> list[str]:
    """Stop the servers this checkout started, in reverse start order; data stays."""
    stopped = []
    with _lock(settings):
        for server in reversed(chosen):
            pid = server.process.stop(server.stop_signal, server.stop_timeout)
            print(f"{server.name:<10} {'stopped' if pid else 'nothing of ours runs'}", flush=True)
            if pid:
                stopped.append(server.name)
    return stopped


def status(chosen: list[Server]) -> list[Status]:
    """What runs now; never starts or stops anything."""
    result = []
    for server in chosen:
        running = server.process.running()
        answers = _answers(server)
        if running:
            state = "running" if answers else "unhealthy"
            result.append(_status(server, state, running.pid))
        else:
            result.append(_status(server, "external" if answers else "down"))
    return result


def reset(settings: Settings) -> None:
    """Stop our servers, then delete `.run/` with all local data and logs."""
    down(settings, servers(settings))
    if settings.run_dir.exists():
        for entry in settings.run_dir.iterdir():
            if entry.is_symlink():  # data kept outside a private checkout (see Postgres)
                shutil.rmtree(entry.resolve(), ignore_errors=True)
                print(f"removed {entry.resolve()}")
    shutil.rmtree(settings.run_dir, ignore_errors=True)
    print(f"removed {settings.run_dir}")


def _start(server: Server) -> Status:
    running = server.process.running()
    if running:
        if running.address != server.address:
            raise InfraError(
                f"{server.title} from this checkout runs at {running.address}, not at the "
                f"configured {server.address}; run `make infra-down` first to move it"
            )
        return _status(server, "running", running.pid)
    if _answers(server):
        return _status(server, "external")
    if not server.host.startswith(LOOPBACK):
        raise InfraError(
            f"{server.title} does not answer at {server.address}, and servers are only "
            f"started on loopback; start it there or point {server.ports()[0].env} elsewhere"
        )
    main = server.ports()[0]
    if port_is_open(server.host, main.number):
        raise InfraError(
            f"{server.title} cannot start: {server.address} is taken by "
            f"{listener_of(main.number)}, which does not answer as {server.title}; "
            f"stop it or set {main.env} to a free port"
        )
    for port in server.ports():
        if not port_is_free(server.host, port.number, udp=port.udp):
            raise InfraError(
                f"{server.title} cannot start: {server.host}:{port.number}"
                f"{'/udp' if port.udp else ''} is in use by {listener_of(port.number)}; "
                f"stop it or set {port.env} to a free port"
            )
    server.prepare()
    command = server.command()
    pid = server.process.spawn(command.argv, server.address, user=command.user, env=command.env)
    return _status(server, "started", pid)


def _answers(server: Server) -> bool:
    try:
        server.probe()
    except Exception:  # a failed probe is an answer: the server is not usable there
        return False
    return True


def _status(server: Server, state: str, pid: int | None = None) -> Status:
    return Status(server.name, state, server.address, pid, str(server.process.log_file))


@contextmanager
def _lock(settings: Settings) -> Iterator[None]:
    """One `infra up/down` at a time per run directory (a second one waits)."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    with (settings.run_dir / "infra.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
