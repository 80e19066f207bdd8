"""Zentry's own processes on this machine: service instances and the gateway's endpoint feed.

`make dev` runs them in the foreground (`python -m infra dev`) and the
end-to-end tests start their own through the same `Mesh`. Children are
plain subprocesses of the caller: they stop with it, and `stop_all` stops
exactly the ones it started (SIGTERM, so each deregisters and drains).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.secret import ensure_secret
from infra.config import Settings
from infra.errors import InfraError
from infra.processes import free_port, wait_until
from services.kit import healthcheck

#: Every service that exists (`python -m services.<name>`), in start order.
SERVICES = ("user", "sleep", "feed", "leaderboard", "analytics")


@dataclass
class Child:
    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen
    instance_id: str = ""
    port: int = 0
    #: ZENTRY_ROLE: "all", "api" (serves, in Consul) or "consumer" (its consumers only).
    role: str = "all"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Mesh:
    settings: Settings
    children: list[Child] = field(default_factory=list)

    @property
    def secrets_dir(self) -> Path:
        return self.settings.run_dir / "secrets"

    def env(self) -> dict[str, str]:
        """The environment of every child: ours, plus the local token keys and the gateway's
        secret unless given."""
        from services.user.tokens import ensure_keypair

        private = self.secrets_dir / "jwt-private.pem"
        public = self.secrets_dir / "jwt-public.pem"
        env = dict(os.environ)
        if "ZENTRY_JWT_PRIVATE_KEY_FILE" not in env:
            ensure_keypair(private, public)
            env["ZENTRY_JWT_PRIVATE_KEY_FILE"] = str(private)
            env["ZENTRY_JWT_PUBLIC_KEY_FILE"] = str(public)
        if "ZENTRY_GATEWAY_SECRET_FILE" not in env:
            env["ZENTRY_GATEWAY_SECRET_FILE"] = str(ensure_secret(self.secrets_dir / "gateway"))
        return env

    def start_feed(self, extra_env: dict[str, str] | None = None) -> Child:
        """The Consul → Envoy endpoint feed (gateway.endpoints); it renders Envoy's config first."""
        return self._spawn(
            "gateway-feed", [sys.executable, "-m", "gateway", "feed"], extra_env or {}
        )

    def start_process(
        self, name: str, argv: list[str], extra_env: dict[str, str] | None = None
    ) -> Child:
        """Any other process of ours (a tool), logged and stopped like the rest."""
        return self._spawn(name, argv, extra_env or {})

    def start_service(
        self,
        service: str,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        role: str = "all",
    ) -> Child:
        """Start one instance of `role`; `wait_healthy` waits for it.

        `port` None keeps the service's own (ZENTRY_<SERVICE>_PORT, else its default);
        0 picks a free one. A consumer is named `<service>-consumer-<n>`, since it
        serves no API: Consul does not list it, and its port is always a free one.
        """
        prefix = f"{service}-consumer-" if role == "consumer" else f"{service}-"
        number = sum(1 for c in self.children if c.name.startswith(prefix)) + 1
        instance_id = f"{prefix}{number}-{uuid.uuid4().hex[:8]}"
        env = {"ZENTRY_INSTANCE_ID": instance_id, "ZENTRY_ROLE": role, **(extra_env or {})}
        if role == "consumer":
            port = free_port()
        if port is not None:
            env[f"ZENTRY_{service.upper()}_PORT"] = str(port)
        child = self._spawn(f"{prefix}{number}", [sys.executable, "-m", f"services.{service}"], env)
        child.instance_id, child.role = instance_id, role
        if role == "consumer":
            child.port = port
        return child

    def wait_healthy(self, child: Child, timeout: float = 60.0) -> int:
        """Block until the instance is passing (in Consul; a consumer, to its own health
        check); returns its port."""
        service = child.name.rsplit("-", 1)[0]

        def serving() -> None:
            status = healthcheck.check(f"127.0.0.1:{child.port}", timeout=1)
            if status != "SERVING":
                raise RuntimeError(f"its health check says {status}")

        def passing() -> None:
            entries = httpx.get(
                f"{self.settings.consul.http_url}/v1/health/service/{service}",
                params={"passing": "true"},
                timeout=2,
            ).json()
            ports = [
                e["Service"]["Port"] for e in entries if e["Service"]["ID"] == child.instance_id
            ]
            if not ports:
                raise RuntimeError(f"{child.instance_id} is not passing in Consul yet")
            child.port = ports[0]

        consumer = child.role == "consumer"
        state = "serving its health check" if consumer else "healthy in Consul"
        wait_until(
            serving if consumer else passing,
            what=f"{child.name} {state}",
            timeout=timeout,
            log_file=child.log,
            exit_code=child.process.poll,
        )
        return child.port

    def stop(self, child: Child, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal one child and wait for it; returns its exit code."""
        if child.alive():
            child.process.send_signal(sig)
        try:
            return child.process.wait(timeout)
        except subprocess.TimeoutExpired:
            child.process.kill()
            return child.process.wait()
        finally:
            with contextlib.suppress(ValueError):
                self.children.remove(child)

    def stop_all(self, timeout: float = 30) -> None:
        """SIGTERM every child at once (services first drain in parallel), then wait."""
        for child in self.children:
            if child.alive():
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in list(self.children):
            self.stop(child, timeout=max(0.1, deadline - time.monotonic()))

    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str]) -> Child:
        log = self.settings.log_dir / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            try:
                process = subprocess.Popen(
                    argv,
                    cwd=self.settings.repo_dir,
                    env={**self.env(), **extra_env},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            except OSError as error:
                raise InfraError(f"could not start {name}: {error}") from None
        child = Child(name, argv, log, process)
        self.children.append(child)
        return child


def run_module(settings: Settings, module: str) -> int:
    """Run `python -m module` in the foreground with the environment services get."""
    return subprocess.call(
        [sys.executable, "-m", module], cwd=settings.repo_dir, env=Mesh(settings).env()
    )


def run_dev(settings: Settings) -> int:
    """`make dev`: infrastructure, every service and the gateway; Ctrl-C stops what it started."""
    from infra import lifecycle

    statuses = lifecycle.up(settings, lifecycle.servers(settings))
    started_here = [s.server for s in statuses if s.state == "started"]
    mesh = Mesh(settings)
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        mesh.start_feed()
        for child in [mesh.start_service(service) for service in SERVICES]:
            mesh.wait_healthy(child)
        base = f"http://{settings.envoy.host}:{settings.envoy.gateway_port}"
        wait_until(
            lambda: httpx.get(f"{base}/.well-known/jwks.json", timeout=2).raise_for_status(),
            what="the gateway routing to the user service",
            timeout=30,
            log_file=settings.log_file("envoy"),
        )
        _print_banner(settings, mesh, base)
        while stop["signal"] is None:
            dead = [c for c in mesh.children if not c.alive()]
            if dead:
                for child in dead:
                    print(
                        f"dev: {child.name} exited with code {child.process.returncode}; "
                        f"read {child.log}",
                        file=sys.stderr,
                    )
                code = 1
                break
            time.sleep(0.5)
    finally:
        print("\ndev: stopping the services and the endpoint feed ...", flush=True)
        mesh.stop_all()
        servers = lifecycle.servers(settings, started_here) if started_here else []
        if servers:
            print("dev: stopping the servers this run started ...", flush=True)
            lifecycle.down(settings, servers)
    return code


def _print_banner(settings: Settings, mesh: Mesh, base: str) -> None:
    host = settings.envoy.host
    lines = [
        "",
        "Zentry runs. Ctrl-C stops everything this command started.",
        f"  REST API       {base}   (try: curl -XPOST {base}/v1/users -d '{{...}}')",
        f"  Consul UI      {settings.consul.http_url}/ui",
        f"  Envoy admin    {settings.envoy.admin_url}",
    ]
    for child in mesh.children:
        if child.port:
            lines.append(f"  {child.name:<14} {host}:{child.port}   log {child.log}")
    first = next((c for c in mesh.children if c.port), None)
    if first:
        lines.append(f"  grpcurl        .tools/bin/grpcurl -plaintext {host}:{first.port} list")
    lines.append(f"  logs           {settings.log_dir}/")
    print("\n".join(lines), flush=True)
