"""Small helpers shared by the test tiers: unique names and waiting with a deadline."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def unique(prefix: str) -> str:
    """A name no other test (or earlier run) uses, so tests isolate themselves."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def eventually(check: Callable[[], T], *, timeout: float, what: str, interval: float = 0.2) -> T:
    """Call `check` until it returns a truthy value; fail the test with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout:.0f}s: {what}")
        time.sleep(interval)
