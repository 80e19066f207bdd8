"""Each process's metrics, in Prometheus' text format on a port of its own (`serve`).

What an operator alerts on (k8s/components/monitoring/rules.yaml, k8s/RUNBOOK.md):

- RPCs: `grpc_server_handled_total` and the `grpc_server_handling_seconds`
  histogram, per service, method and status code (`ServerMetrics`);
- consumers: `zentry_consumer_lag` per group and partition, events applied,
  skipped and parked, retries by cause (services.kit.consumer);
- the outbox: rows waiting, the age of the oldest, rows published
  (services.kit.outbox; reported by the instance whose relay holds the lock);
- `zentry_redis_fallback`: 1 while a reader reads PostgreSQL because Redis failed;
- the database pools: connections in use and idle, and the most there can be.

The names follow Prometheus' conventions (base units, `_total` counters) and, for
RPCs, the ones go-grpc-prometheus made common, so existing dashboards fit.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from typing import ClassVar
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.pool import QueuePool

from services.kit.interceptors import Around, code_seen

#: Seconds; from a Redis read to a slow log-in (an Argon2 hash), and the route timeout.
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

RPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
RPC_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from an RPC's arrival to its answer, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "zentry_consumer_lag",
    "Events on a partition that its group's member here has not applied yet.",
    ["group", "topic", "partition"],
)
EVENTS_APPLIED = Counter("zentry_events_applied", "Events applied, by group.", ["group"])
EVENTS_SKIPPED = Counter(
    "zentry_events_skipped", "Events skipped: seen before, or of no use to the group.", ["group"]
)
EVENTS_PARKED = Counter(
    "zentry_events_parked",
    "Events dead-lettered onto <topic>.dlt, by group and the topic they came from.",
    ["group", "topic"],
)
CONSUMER_RETRIES = Counter(
    "zentry_consumer_retries",
    "Failed attempts at applying a batch: an outage (retried until it ends) or a failure.",
    ["group", "cause"],
)
OUTBOX_WAITING = Gauge(
    "zentry_outbox_waiting", "Outbox rows not yet relayed to Kafka.", ["service"]
)
OUTBOX_OLDEST = Gauge(
    "zentry_outbox_oldest_seconds",
    "Age of the oldest outbox row not yet relayed (0 when none waits).",
    ["service"],
)
OUTBOX_PUBLISHED = Counter(
    "zentry_outbox_published", "Outbox rows relayed to Kafka and deleted.", ["service"]
)
REDIS_FALLBACK = Gauge(
    "zentry_redis_fallback",
    "1 while a reader reads PostgreSQL because Redis failed, else 0.",
    ["what"],
)


class ServerMetrics(Around):
    """Counts and times every RPC by method and the status code its caller saw."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, grpc.StatusCode], tuple] = {}

    async def around(self, call, request, context, method):
        started = time.perf_counter()
        try:
            return await call(request, context)
        finally:
            handled, seconds = self._of(method, code_seen(context))
            handled.inc()
            seconds.observe(time.perf_counter() - started)

    async def around_stream(self, call, request, context, method):
        """A stream is counted when it ends; its length says how long it was watched, not how
        fast it answered, so it is not timed."""
        try:
            await call(request, context)
        finally:
            self._of(method, code_seen(context))[0].inc()

    def _of(self, method: str, code: grpc.StatusCode) -> tuple:
        """The counter and histogram of one method and code (looked up once each)."""
        series = self._series.get((method, code))
        if series is None:
            service, _, name = method.lstrip("/").rpartition("/")
            labels = (service, name, code.name)
            series = self._series[method, code] = (
                RPC_HANDLED.labels(*labels),
                RPC_SECONDS.labels(*labels),
            )
        return series


class _Pools(Collector):
    """The database pools of this process, read when scraped."""

    def __init__(self) -> None:
        self._pools: weakref.WeakValueDictionary[str, QueuePool] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()  # added on the event loop, read by the scrape's thread

    def add(self, database: str, pool: QueuePool) -> None:
        with self._lock:
            self._pools[database] = pool

    #: The families it reports, name → (help, labels).
    FAMILIES: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "zentry_db_pool_connections": (
            "Connections of a database pool, in use or idle.",
            ("database", "state"),
        ),
        "zentry_db_pool_max_connections": (
            "The most connections a database pool opens (its size plus overflow).",
            ("database",),
        ),
    }

    def collect(self) -> Iterator[GaugeMetricFamily]:
        connections, most = (
            GaugeMetricFamily(name, text, labels=labels)
            for name, (text, labels) in self.FAMILIES.items()
        )
        with self._lock:
            pools = list(self._pools.items())
        for database, pool in pools:
            most.add_metric([database], pool.size() + max(pool._max_overflow, 0))
            if "_queue" in vars(pool._pool):  # else never used: reading it would make its queue
                connections.add_metric([database, "in_use"], pool.checkedout())
                connections.add_metric([database, "idle"], pool.checkedin())
        yield connections
        yield most


POOLS = _Pools()
REGISTRY.register(POOLS)


def serve(host: str, port: int) -> WSGIServer:
    """Serve /metrics on `host`:`port` (0 picks a free port) from a thread of its own;
    returns the server (its `server_port`; `shutdown()` and `server_close()` end it)."""
    server, _thread = start_http_server(port, addr=host)
    return server
