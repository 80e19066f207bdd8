"""Processes that `infra up` started, tracked by state files so `infra down` stops only those.

A state file under `.run/pids/` holds the pid and the address a server was
started with. Each server runs with its data directory as working directory,
and a pid is trusted only while that is still so (servers rewrite their
command lines, not their working directory), so a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infra.errors import InfraError


@dataclass(frozen=True)
class Running:
    pid: int
    address: str


class ManagedProcess:
    """One server process started in its own session, logging to one file."""

    def __init__(self, name: str, state_file: Path, log_file: Path, home: Path):
        self.name = name
        self.state_file = state_file
        self.log_file = log_file
        self.home = home
        self._child: subprocess.Popen[bytes] | None = None

    def running(self) -> Running | None:
        """The live process this checkout started, or None (a stale state file is removed)."""
        try:
            state = json.loads(self.state_file.read_text())
            pid, address = int(state["pid"]), str(state["address"])
        except (OSError, ValueError, KeyError, TypeError):
            self.state_file.unlink(missing_ok=True)
            return None
        if not self._is_ours(pid):
            self.state_file.unlink(missing_ok=True)
            return None
        return Running(pid, address)

    def spawn(
        self,
        argv: list[str],
        address: str,
        *,
        user: str | None = None,
        env: dict[str, str] | None = None,
    ) -> int:
        """Start the server in its home, detached from this terminal; returns its pid at once."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(
                f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S%z')} infra up: {argv[0]}\n".encode()
            )
            log.flush()
            try:
                self._child = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    user=user,
                    env=env,
                    cwd=self.home.resolve(),
                )
            except OSError as exc:
                raise InfraError(f"{self.name} could not be started ({argv[0]}: {exc})") from exc
        self.state_file.write_text(json.dumps({"pid": self._child.pid, "address": address}))
        return self._child.pid

    def exit_code(self) -> int | None:
        """The exit code if the process this object spawned has already died, else None."""
        return None if self._child is None else self._child.poll()

    def stop(self, sig: signal.Signals, timeout: float) -> int | None:
        """Signal our process and wait for it to exit; returns its pid, or None if none ran.

        Raises InfraError if it is still alive after `timeout` seconds.
        """
        running = self.running()
        if running is None:
            return None
        with contextlib.suppress(ProcessLookupError):  # it died since running() looked
            os.kill(running.pid, sig)
        deadline = time.monotonic() + timeout
        while self._is_ours(running.pid):
            if time.monotonic() > deadline:
                raise InfraError(
                    f"{self.name} (pid {running.pid}) did not stop within {timeout:.0f}s "
                    f"of {sig.name}; read {self.log_file}, then kill it by hand"
                )
            time.sleep(0.2)
        self.state_file.unlink(missing_ok=True)
        return running.pid

    def _is_ours(self, pid: int) -> bool:
        if self._child is not None and self._child.pid == pid and self._child.poll() is not None:
            return False  # our own child has exited (reaped now, so no zombie lingers)
        try:
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
            status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return status != "Z" and cwd.is_relative_to(self.home.resolve())


def wait_until(
    ready: Callable[[], object],
    *,
    what: str,
    timeout: float,
    log_file: Path,
    exit_code: Callable[[], int | None] = lambda: None,
) -> None:
    """Poll `ready()` until it returns without raising; it must not block for long.

    Raises InfraError naming the log file if the process exits or the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while True:
        try:
            ready()
            return
        except Exception as exc:  # any failed probe means "not yet": retried until the deadline
            last_error = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        code = exit_code()
        if code is not None:
            raise InfraError(f"{what} exited with code {code} while starting; read {log_file}")
        if time.monotonic() > deadline:
            raise InfraError(
                f"{what} was not ready after {timeout:.0f}s (last probe: {last_error}); "
                f"read {log_file} (ZENTRY_READY_TIMEOUT sets the wait)"
            )
        time.sleep(0.25)


#: Every port free_port gave: a child binds its port a moment later, and the kernel, asked
#: again meanwhile, may give the same one.
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on right now, and never one this process gave before."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def port_is_free(host: str, port: int, *, udp: bool = False) -> bool:
    """True if nothing listens on host:port (checked by binding, the way the server will)."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_is_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def listener_of(port: int) -> str:
    """Best-effort name and pid of the process listening on a TCP port, for error messages."""
    try:
        out = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "another process"
    if 'users:(("' not in out:
        return "another process"
    name, rest = out.split('users:(("', 1)[1].split('"', 1)
    pid = rest.split("pid=", 1)[1].split(",", 1)[0] if "pid=" in rest else "?"
    return f"{name} (pid {pid})"


def run_logged(
    argv: list[str],
    log: Path,
    failure: str,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    user: str | None = None,
    secrets: tuple[str, ...] = (),
) -> None:
    """Run a command to completion, its output appended to `log` (readable while it runs);
    each of `secrets` in the command line is logged as `***`.

    Raises InfraError(`failure`, naming the log) if it cannot start or exits non-zero.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    shown = " ".join(argv)
    for secret in secrets:
        shown = shown.replace(secret, "***")
    with log.open("a") as out:
        out.write(f"\n$ {shown}\n")
        out.flush()
        try:
            code = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env, user=user
            ).returncode
        except OSError as exc:
            raise InfraError(f"{failure} ({argv[0]}: {exc})") from exc
    if code != 0:
        raise InfraError(f"{failure} (exit code {code}); read {log}")
