"""A redis-server of a test's own, to stop and start again: Redis down, then back.

The suite's shared Redis stays up for everyone else.
"""

from __future__ import annotations

import shutil
import subprocess

import redis

from infra.processes import free_port
from tests.support import eventually


class OwnRedis:
    """A redis-server for one test, on a free port; `stop()` and `start()` it at will."""

    def __init__(self, data_dir):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = data_dir
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is installed by make setup"
        self._process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self._dir),
             "--save", "", "--appendonly", "no", "--zset-max-listpack-entries", "1024"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        eventually(lambda: _pings(client), timeout=10, what="our redis-server answers")
        client.close()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
