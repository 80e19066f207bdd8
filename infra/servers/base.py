"""What every local server declares, so one lifecycle (infra.lifecycle) can run them all."""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from infra.config import Settings
from infra.processes import ManagedProcess


@dataclass(frozen=True)
class Port:
    """A port the server binds, with the variable that moves it."""

    env: str
    number: int
    udp: bool = False


@dataclass(frozen=True)
class Command:
    argv: list[str]
    user: str | None = None
    env: dict[str, str] | None = None


class Server(ABC):
    """One real server: how to probe it, prepare its data, start it and stop it.

    `probe()` must be quick and raise when the server is not (yet) ready; it is
    also how an already running server of another origin is recognised and used.
    """

    name: str
    title: str
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 60.0

    def __init__(self, settings: Settings):
        self.settings = settings
        self.process = ManagedProcess(
            name=self.title,
            state_file=settings.pid_dir / f"{self.name}.json",
            log_file=settings.log_file(self.name),
            home=self.data_dir,
        )

    @property
    def data_dir(self) -> Path:
        return self.settings.run_dir / self.name

    @property
    def host(self) -> str:
        """Where it answers: the host of the settings section named like it (`settings.redis`)."""
        return getattr(self.settings, self.name).host

    @abstractmethod
    def ports(self) -> list[Port]:
        """The ports it binds; the first is the one clients use."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.ports()[0].number}"

    @abstractmethod
    def probe(self) -> None:
        """Raise unless the server answers a real request (a query, a PING, ...)."""

    def prepare(self) -> None:
        """Create data directories and config files before the first start (idempotent)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)

    @abstractmethod
    def command(self) -> Command: ...

    def after_ready(self) -> None:  # noqa: B027 - most servers need nothing declared
        """Declare what the project needs on a ready server (databases, topics); idempotent."""
