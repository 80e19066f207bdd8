"""CPU time of processes and everything they started, from /proc: what a scenario cost whom."""

from __future__ import annotations

import json
import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
SERVERS = ("postgres", "redis", "kafka", "envoy", "consul", "zipkin")


def server_pids(run_dir: Path) -> dict[str, int]:
    """The pids of the servers `make infra-up` started (infra.processes' state files)."""
    pids = {}
    for name in SERVERS:
        try:
            pids[name] = int(json.loads((run_dir / "pids" / f"{name}.json").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            continue
    return pids


def cpu_roots(settings, servers: tuple[str, ...] = ("postgres", "redis")) -> dict[str, int]:
    """This process (an ingestion bench's runner) and the servers it writes to."""
    pids = server_pids(settings.run_dir)
    return {"runner": os.getpid(), **{name: pids[name] for name in servers if name in pids}}


def per_event(cpu: dict[str, float], events: int) -> dict[str, float]:
    """CPU seconds into milliseconds an event."""
    return {name: round(seconds * 1000 / events, 3) for name, seconds in cpu.items()}


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, CPU ticks of the process and of its children it has waited for)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15), 0-based.
    return int(fields[1]), sum(int(f) for f in fields[11:15])


def cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each root and its live descendants (PostgreSQL's backends)."""
    parents, ticks = {}, {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents[int(entry.name)], ticks[int(entry.name)] = stat
    root_of = {pid: name for name, pid in roots.items()}
    totals = dict.fromkeys(roots, 0)
    for pid, used in ticks.items():
        ancestor = pid
        while ancestor not in root_of and ancestor > 1:
            ancestor = parents.get(ancestor, 0)
        if ancestor in root_of:
            totals[root_of[ancestor]] += used
    return {name: t / _TICK for name, t in totals.items()}


class CpuMeter:
    """CPU seconds each root spent between `start()` and `stop()`."""

    def __init__(self, roots: dict[str, int]):
        self._roots = roots
        self._before: dict[str, float] = {}
        self.spent: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self._before = cpu_seconds(self._roots)
        return self

    def stop(self) -> dict[str, float]:
        after = cpu_seconds(self._roots)
        self.spent = {name: round(after[name] - self._before[name], 2) for name in self._roots}
        return self.spent
