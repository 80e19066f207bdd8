"""Zentry's own processes on this machine: service instances and the gateway's endpoint feed.

There is one way to start a mesh: a `Layout` says which instances run,
`Mesh.start` starts the endpoint feed and them, and `Mesh.wait_ready` waits
until the gateway really serves them (each instance healthy, Envoy routing
to every API instance and running the listener the feed rendered, the JWKS
answering through the gateway); never a blind sleep. `make dev`
(`python -m infra dev`), the end-to-end tests, the bench and the chaos run
each start theirs so, with the layout and environment they need
(`running` does the whole of it for a block). Children are plain
subprocesses of the caller: they stop with it, and `stop_all` stops exactly
the ones it started (SIGTERM, so each deregisters and drains).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import grpc
import httpx

from gateway.secret import ensure_secret
from infra import credentials
from infra.config import Settings
from infra.errors import InfraError
from infra.processes import free_port, wait_until
from infra.tls import TOOLS, LocalCa, local_ca, tls_wanted
from services.kit import healthcheck
from services.kit import tls as kit_tls
from services.kit.roster import CONSUMING, SERVICES
from services.kit.settings import TlsFiles

#: ZENTRY_ROLE: "all" (serves and consumes), "api" (serves, in Consul) or "consumer"
#: (its consumers only, and a health check on a port of its own).
ROLES = ("all", "api", "consumer")


@dataclass(frozen=True)
class Layout:
    """The instances of a mesh: how many serve each service's API, and how many apart from
    them run the consumers of each service that has some (k8s/ runs them so).

    With `consumers` 0 every instance does both (role "all"); otherwise the API
    instances of a consuming service take role "api", and `consumers` more of it
    role "consumer". Raises ValueError for an unknown service or a count that
    cannot be.
    """

    #: API instances per service, in start order; a service not named runs none.
    api: Mapping[str, int]
    consumers: int = 0
    #: Each API instance on its service's own port (ZENTRY_<SERVICE>_PORT, else its default)
    #: rather than a free one: the addresses README lists, so one instance of each at most.
    own_ports: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.api) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; choose from {SERVICES}")
        if self.consumers < 0 or any(count < 0 for count in self.api.values()):
            raise ValueError("instance counts cannot be negative")
        if self.own_ports and any(count > 1 for count in self.api.values()):
            raise ValueError("two instances of a service cannot share its own port")
        object.__setattr__(self, "api", MappingProxyType(dict(self.api)))  # frozen all through

    def instances(self) -> list[tuple[str, str]]:
        """(service, role) of every instance, in start order."""
        result = []
        for service, count in self.api.items():
            apart = self.consumers > 0 and service in CONSUMING
            result += [(service, "api" if apart else "all")] * count
            if apart:
                result += [(service, "consumer")] * self.consumers
        return result


#: `make dev`: one API instance of each service on its own port and, as production runs
#: them, two consumer instances of each service that consumes: a group's partitions are
#: shared by two processes, so its consumers use both cores.
DEV = Layout(dict.fromkeys(SERVICES, 1), consumers=2, own_ports=True)
#: The end-to-end tests, as production runs it: two API instances of each service and
#: one consumer instance of each service that consumes.
E2E = Layout(dict.fromkeys(SERVICES, 2), consumers=1)
#: The chaos run strikes one instance of a role at a time: two of each role keep it served.
CHAOS = Layout(dict.fromkeys(SERVICES, 2), consumers=2)
#: The bench: two of each service, each consuming too, so the gateway spreads the load.
BENCH = Layout(dict.fromkeys(SERVICES, 2))
#: The log-in flood alone (`python -m bench.flood`): what it calls, log-ins and feed reads.
FLOOD = Layout({"user": 2, "feed": 2})


def gateway_url(settings: Settings) -> str:
    """The REST base URL: Envoy's gateway listener."""
    return f"http://{settings.envoy.host}:{settings.envoy.gateway_port}"


@dataclass
class Child:
    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen
    instance_id: str = ""
    port: int = 0
    #: Where it serves /metrics (services.kit.metrics).
    metrics_port: int = 0
    role: str = "all"
    #: The service this is an instance of; empty for any other process (the endpoint feed, tools).
    service: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Mesh:
    settings: Settings
    children: list[Child] = field(default_factory=list)
    #: The endpoint feed this mesh runs, if any (`start_endpoint_feed`).
    endpoint_feed: Child | None = None
    #: The local CA when this mesh runs mutual TLS (`running(..., tls=True)`): every instance
    #: gets its service's certificate (ZENTRY_TLS_*), Envoy the gateway's
    #: (ZENTRY_GATEWAY_TLS_*), and this mesh's own calls present the tools' (`channel`).
    tls: LocalCa | None = None
    #: The listener file Envoy must run once the feed has started (rendered by this mesh).
    _listeners: Path | None = field(default=None, init=False, repr=False)
    #: Instances started so far by name prefix: every child gets a name (and log) of its own.
    _started: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    @property
    def secrets_dir(self) -> Path:
        return self.settings.run_dir / "secrets"

    @property
    def gateway_url(self) -> str:
        """The REST base URL."""
        return gateway_url(self.settings)

    @property
    def instances(self) -> list[Child]:
        """The service instances among the children, in start order."""
        return [child for child in self.children if child.service]

    def env(self) -> dict[str, str]:
        """The environment of every child: ours, plus the local token keys, the gateway's
        secret and the local Zipkin as where spans go (OTEL_EXPORTER_ZIPKIN_ENDPOINT; set
        it empty for none), each unless given."""
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
        env.setdefault("OTEL_EXPORTER_ZIPKIN_ENDPOINT", self.settings.zipkin.spans_url)
        return env

    def pooled(self) -> dict[str, str]:
        """The environment that sends an instance's queries through the local PgBouncer, in
        transaction mode as production's Pooler, and its sessions to PostgreSQL itself."""
        postgres = self.settings.postgres
        return {
            "ZENTRY_POSTGRES_PORT": str(postgres.pooler_port),
            "ZENTRY_POSTGRES_POOLER": "transaction",
            "ZENTRY_POSTGRES_SESSION_PORT": str(postgres.port),
        }

    def start(
        self,
        layout: Layout,
        env: Mapping[str, str] | None = None,
        gateway_env: Mapping[str, str] | None = None,
    ) -> list[Child]:
        """Start the endpoint feed and every instance of `layout`, all at once, and return the
        instances without waiting for them (`wait_ready` does).

        `env` is added to every instance's environment, `gateway_env` to the feed's
        (the gateway's settings, ZENTRY_GATEWAY_*: its limits). Raises InfraError if
        this mesh runs an endpoint feed already or a process cannot start.
        """
        self.start_endpoint_feed(gateway_env)
        port = None if layout.own_ports else 0
        return [
            self.start_service(service, port, env, role=role)
            for service, role in layout.instances()
        ]

    def start_endpoint_feed(self, extra_env: Mapping[str, str] | None = None) -> Child:
        """The gateway's endpoint feed (`python -m gateway feed`: Consul's healthy instances →
        Envoy's endpoint files), which renders Envoy's config for its environment first.

        That config is rendered here first, with the same environment, so this mesh
        knows which listener Envoy must run (`wait_ready`); the feed then finds it
        unchanged. Raises InfraError if this mesh runs a feed already or the config
        cannot be rendered.
        """
        if self.endpoint_feed is not None:
            raise InfraError(f"this mesh runs an endpoint feed already ({self.endpoint_feed.name})")
        extra = {**(self.tls.gateway_env() if self.tls else {}), **(extra_env or {})}
        self._listeners = self._render_gateway({**self.env(), **extra})
        self.endpoint_feed = self._spawn(
            "gateway-feed",
            [sys.executable, "-m", "gateway", "feed"],
            {**credentials.gateway_env(self.settings), **extra},
        )
        return self.endpoint_feed

    def restart_endpoint_feed(self, extra_env: Mapping[str, str] | None = None) -> Child:
        """Stop the endpoint feed and start another with `extra_env`, which renders the
        gateway's config for it (its limits change with it); `wait_ready` waits until
        Envoy runs that config. The endpoint files keep their content meanwhile."""
        if self.endpoint_feed is not None:
            self.stop(self.endpoint_feed)
        return self.start_endpoint_feed(extra_env)

    def start_process(
        self, name: str, argv: list[str], extra_env: dict[str, str] | None = None
    ) -> Child:
        """Any other process of ours (a tool), logged and stopped like the rest."""
        return self._spawn(name, argv, extra_env or {})

    def start_service(
        self,
        service: str,
        port: int | None = None,
        extra_env: Mapping[str, str] | None = None,
        role: str = "all",
    ) -> Child:
        """Start one instance of `service` in `role` (ZENTRY_ROLE); `wait_healthy` waits for it.

        `port` None keeps the service's own (ZENTRY_<SERVICE>_PORT, else its default);
        0 picks a free one. A consumer is named `<service>-consumer-<n>`, since it
        serves no API: Consul does not list it, and its health check listens on
        `port`, or on a free port unless one is given. `role` is the way to set the
        role; a ZENTRY_ROLE in `extra_env` is taken as the role (so `Child.role`
        tells the truth), and raises ValueError if it contradicts `role`.
        """
        extra = dict(extra_env or {})
        given = extra.pop("ZENTRY_ROLE", None)
        if given is not None and role not in ("all", given):
            raise ValueError(f"ZENTRY_ROLE={given} in the environment, but role={role!r}")
        role = given or role
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; choose from {ROLES}")
        prefix = f"{service}-consumer-" if role == "consumer" else f"{service}-"
        number = self._started[prefix] = self._started.get(prefix, 0) + 1
        instance_id = f"{prefix}{number}-{uuid.uuid4().hex[:8]}"
        metrics_port = free_port()
        env = {
            **credentials.service_env(self.settings, service),
            **(self.pooled() if "ZENTRY_POSTGRES_PORT" not in extra else {}),
            **(self.tls.env(service) if self.tls else {}),
            "ZENTRY_INSTANCE_ID": instance_id,
            "ZENTRY_ROLE": role,
            "ZENTRY_METRICS_PORT": str(metrics_port),
            **extra,
        }
        if role == "consumer" and not port:
            port = free_port()
        if port is not None:
            env[f"ZENTRY_{service.upper()}_PORT"] = str(port)
        child = self._spawn(f"{prefix}{number}", [sys.executable, "-m", f"services.{service}"], env)
        child.instance_id, child.role, child.service = instance_id, role, service
        child.metrics_port = int(env["ZENTRY_METRICS_PORT"])
        if role == "consumer":
            child.port = port
        return child

    @property
    def tool_tls(self) -> TlsFiles | None:
        """What this mesh's own calls to instances present: the tools' certificate, or None
        when the mesh runs plaintext."""
        return self.tls.files(TOOLS) if self.tls else None

    def channel(self, port: int, service: str) -> grpc.Channel:
        """A blocking channel to the instance of `service` on local `port`, as a tool calls
        it: over mutual TLS (the tools' certificate, checking the server names `service`)
        when the mesh runs TLS, else plaintext."""
        return kit_tls.channel(f"127.0.0.1:{port}", self.tool_tls, service)

    def grpcurl_flags(self, service: str) -> list[str]:
        """grpcurl's flags for calling an instance of `service` (`channel`'s, for grpcurl)."""
        files = self.tool_tls
        if files is None:
            return ["-plaintext"]
        return [
            "-cacert", str(files.ca_file), "-cert", str(files.cert_file),
            "-key", str(files.key_file), "-servername", service,
        ]  # fmt: skip

    def wait_healthy(self, child: Child, timeout: float | None = None) -> int:
        """Block until the instance is passing (in Consul; a consumer, to its own health
        check); returns its port. Raises InfraError if it exits first or `timeout`
        seconds pass (default ZENTRY_READY_TIMEOUT)."""

        def serving() -> None:
            status = healthcheck.check(
                f"127.0.0.1:{child.port}", timeout=1, tls=self.tool_tls, server_name=child.service
            )
            if status != "SERVING":
                raise RuntimeError(f"its health check says {status}")

        def passing() -> None:
            entries = httpx.get(
                f"{self.settings.consul.http_url}/v1/health/service/{child.service}",
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
            timeout=self._timeout(timeout),
            log_file=child.log,
            exit_code=child.process.poll,
        )
        return child.port

    def wait_serving(self, children: Iterable[Child], timeout: float | None = None) -> None:
        """Block until each of these instances is healthy (`wait_healthy`) and Envoy routes
        to each that serves the API (its admin /clusters lists it): for instances
        started into a running mesh. Raises InfraError as `wait_healthy` does."""
        children = list(children)
        for child in children:
            self.wait_healthy(child, timeout)
        api = [child for child in children if child.role != "consumer"]

        def routed() -> None:
            hosts = _host_stat(_clusters(self.settings), "cx_active")
            missing = [
                f"{c.name} (port {c.port})" for c in api if c.port not in hosts.get(c.service, {})
            ]
            if missing:
                raise RuntimeError(f"Envoy does not route to {', '.join(missing)} yet")

        if api:
            feed = self.endpoint_feed
            wait_until(
                routed,
                what="the endpoint feed (Envoy routing to every API instance)",
                timeout=self._timeout(timeout),
                log_file=feed.log if feed else self.settings.log_file("envoy"),
                exit_code=feed.process.poll if feed else lambda: None,
            )

    def wait_gateway(self, timeout: float | None = None) -> None:
        """Block until Envoy runs the listener the endpoint feed rendered (loaded after the
        file was last written, none warming) and, if this mesh runs the user service,
        the gateway answers for the JWKS (so it verifies tokens). Raises InfraError
        naming Envoy's log at the deadline (default ZENTRY_READY_TIMEOUT)."""
        envoy_log = self.settings.log_file("envoy")
        if self._listeners is not None:
            listeners = self._listeners
            wait_until(
                lambda: _runs_listeners(self.settings, listeners),
                what="Envoy running the listener the endpoint feed rendered",
                timeout=self._timeout(timeout),
                log_file=envoy_log,
            )
        if any(child.service == "user" for child in self.instances):
            jwks = f"{self.gateway_url}/.well-known/jwks.json"
            wait_until(
                lambda: httpx.get(jwks, timeout=2).raise_for_status(),
                what="the gateway routing to the user service",
                timeout=self._timeout(timeout),
                log_file=envoy_log,
            )

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the mesh serves: every instance healthy and, if it serves the API,
        routed by Envoy (`wait_serving`), then the gateway (`wait_gateway`). Each wait
        gets `timeout` seconds (default ZENTRY_READY_TIMEOUT); raises InfraError naming
        the log to read."""
        self.wait_serving(self.instances, timeout)
        self.wait_gateway(timeout)

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
            if child is self.endpoint_feed:
                self.endpoint_feed = None

    def stop_all(self, timeout: float = 30) -> None:
        """SIGTERM every child at once (services first drain in parallel), then wait."""
        for child in self.children:
            if child.alive():
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in list(self.children):
            self.stop(child, timeout=max(0.1, deadline - time.monotonic()))

    def _timeout(self, timeout: float | None) -> float:
        return self.settings.ready_timeout if timeout is None else timeout

    def _render_gateway(self, environ: Mapping[str, str]) -> Path:
        """Render Envoy's config as the endpoint feed will with `environ`; returns the
        listener file."""
        # Needs the generated protos: not at import time (as infra.servers.envoy).
        from gateway.config import GatewaySettings
        from gateway.render import render
        from services.kit.settings import ConfigError, Env

        try:
            settings = self.settings
            gateway = GatewaySettings.load(
                Env(environ),
                envoy=settings.envoy,
                consul=settings.consul,
                run_dir=settings.run_dir,
                tools_dir=settings.tools_dir,
            )
            render(gateway)
        except (ConfigError, FileNotFoundError) as error:
            raise InfraError(f"the gateway's config: {error}") from None
        return gateway.config_dir / "lds.json"

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


@contextlib.contextmanager
def running(
    settings: Settings,
    layout: Layout,
    *,
    env: Mapping[str, str] | None = None,
    gateway_env: Mapping[str, str] | None = None,
    tls: bool = False,
) -> Iterator[Mesh]:
    """The servers (as `make infra-up`), then `Mesh.start(layout, env, gateway_env)`, ready
    (`Mesh.wait_ready`) when the block begins; every process the mesh started stops
    when the block ends (the servers stay). `tls`: mutual TLS between Envoy and the
    services and between services, with certificates of the local CA (infra.tls).
    Raises InfraError if something does not start or get ready."""
    from infra import lifecycle

    lifecycle.up(settings, lifecycle.servers(settings))
    mesh = Mesh(settings, tls=local_ca(settings) if tls else None)
    try:
        mesh.start(layout, env, gateway_env)
        mesh.wait_ready()
        yield mesh
    finally:
        mesh.stop_all()


def routed_ports(settings: Settings, cluster: str = "user") -> set[int]:
    """Ports of the hosts Envoy has in `cluster` now (its admin /clusters)."""
    return set(_host_stat(_clusters(settings), "cx_active").get(cluster, {}))


def served_counts(settings: Settings, cluster: str = "user") -> dict[int, int]:
    """Successful requests Envoy sent to each host of `cluster`, by port."""
    return _host_stat(_clusters(settings), "rq_success").get(cluster, {})


def active_requests(settings: Settings, cluster: str) -> dict[int, int]:
    """Requests (and streams) open now to each host of `cluster`, by port."""
    return _host_stat(_clusters(settings), "rq_active").get(cluster, {})


def _clusters(settings: Settings) -> str:
    return httpx.get(f"{settings.envoy.admin_url}/clusters", timeout=5).text


def _host_stat(clusters: str, stat: str) -> dict[str, dict[int, int]]:
    """One per-host stat from Envoy's admin /clusters text (`cluster::host:port::stat::value`
    lines): {cluster: {port: value}}."""
    hosts: dict[str, dict[int, int]] = {}
    for line in clusters.splitlines():
        parts = line.split("::")
        if len(parts) == 4 and parts[2] == stat and ":" in parts[1]:
            hosts.setdefault(parts[0], {})[int(parts[1].rsplit(":", 1)[1])] = int(parts[3])
    return hosts


def _runs_listeners(settings: Settings, listeners: Path) -> None:
    """Raise unless Envoy loaded its listeners (LDS) after `listeners` was last written and
    none is warming. Envoy stamps a successful load only after reading the file."""
    stats = _listener_stats(
        httpx.get(
            f"{settings.envoy.admin_url}/stats",
            params={"filter": r"^listener_manager\."},
            timeout=5,
        ).text
    )
    written = listeners.stat().st_mtime_ns // 1_000_000
    if stats.get("listener_manager.lds.update_time", 0) < written:
        rejected = stats.get("listener_manager.lds.update_rejected", 0)
        raise RuntimeError(
            f"Envoy has not loaded {listeners} since it was written ({rejected} updates rejected)"
        )
    warming = stats.get("listener_manager.total_listeners_warming", 0)
    if warming:
        raise RuntimeError(f"{warming} listener(s) still warming")


def _listener_stats(text: str) -> dict[str, int]:
    """Envoy's admin /stats text (`name: value` lines), the whole-number values."""
    stats = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if value.strip().isdigit():
            stats[name.strip()] = int(value)
    return stats


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
    mesh = Mesh(settings, tls=local_ca(settings) if tls_wanted(os.environ) else None)
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        mesh.start(DEV)
        mesh.wait_ready()
        _print_banner(settings, mesh)
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


def _print_banner(settings: Settings, mesh: Mesh) -> None:
    host, base = settings.envoy.host, mesh.gateway_url
    lines = [
        "",
        "Zentry runs. Ctrl-C stops everything this command started.",
        f"  web app        {base}/",
        f"  REST API       {base}   (try: curl -XPOST {base}/v1/users -d '{{...}}')",
        f"  API reference  {base}/docs",
        f"  Consul UI      {settings.consul.http_url}/ui",
        f"  Envoy admin    {settings.envoy.admin_url}   (metrics: /stats/prometheus)",
        f"  traces         {settings.zipkin.url}/zipkin/   (Zipkin: every request's trace)",
        "  mesh status    make status",
    ]
    for child in mesh.children:
        if child.port:
            lines.append(
                f"  {child.name:<14} {host}:{child.port}   metrics "
                f"http://{host}:{child.metrics_port}/metrics   log {child.log}"
            )
    first = next((c for c in mesh.children if c.port), None)
    if first:
        flags = " ".join(mesh.grpcurl_flags(first.service))
        lines.append(f"  grpcurl        .tools/bin/grpcurl {flags} {host}:{first.port} list")
    lines.append(f"  logs           {settings.log_dir}/")
    print("\n".join(lines), flush=True)
