"""Resident memory of the bench's service processes: idle, and the peak under load."""

from __future__ import annotations

import threading
from pathlib import Path


def rss_mib(pid: int) -> float | None:
    """VmRSS of a process in MiB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class PeakRss:
    """Samples the processes every `interval` seconds in a thread; keeps each one's peak."""

    def __init__(self, pids: dict[str, int], interval: float = 0.25):
        self._pids = pids
        self._interval = interval
        self.peak: dict[str, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.is_set():
            for name, pid in self._pids.items():
                now = rss_mib(pid)
                if now is not None and now > self.peak.get(name, 0.0):
                    self.peak[name] = now
            self._done.wait(self._interval)
