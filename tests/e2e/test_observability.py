"""Seeing the mesh run: one REST call is one trace in Zipkin, and every process's metrics move.

The E2E mesh exports spans to the local Zipkin (`infra.mesh.Mesh.env`) at the
default sampling (every trace), and each instance serves /metrics on a port
of its own (`Child.metrics_port`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families

from infra.mesh import Child, Mesh
from services.analytics.stats.projector import NIGHTS_GROUP
from services.feed.projector import ENTRIES_GROUP
from services.leaderboard.projector import SCORES_GROUP
from tests.support import eventually

#: The consumer groups of a recorded night, by the service that runs them.
NIGHT_GROUPS = {"feed": ENTRIES_GROUP, "leaderboard": SCORES_GROUP, "analytics": NIGHTS_GROUP}
NIGHT_CONSUMERS = set(NIGHT_GROUPS)


def a_night(days_ago: int = 3) -> dict:
    end = (datetime.now(UTC) - timedelta(days=days_ago)).replace(hour=7, minute=0, second=0)
    start = end - timedelta(hours=7)
    return {"startTime": f"{start:%Y-%m-%dT%H:%M:%SZ}", "endTime": f"{end:%Y-%m-%dT%H:%M:%SZ}"}


def is_consumer(span: dict) -> bool:
    return span.get("kind") == "CONSUMER"


def trace_of(settings, request_id: str) -> list[dict]:
    """The spans of the trace whose gateway span carries `request_id` (Envoy's tag)."""
    found = httpx.get(
        f"{settings.zipkin.url}/api/v2/traces",
        params={"annotationQuery": f"guid:x-request-id={request_id}", "limit": 10},
        timeout=5,
    ).raise_for_status()
    traces = found.json()
    assert len(traces) <= 1, f"{len(traces)} traces carry one request id"
    return traces[0] if traces else []


def test_one_rest_call_that_records_a_night_is_one_trace(api, new_account, settings):
    owner = new_account()
    response = api.post("/v1/sleepEntries", headers=owner.auth, json=a_night())
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]

    def whole() -> list[dict] | None:
        """The trace once every process has sent its part (each sends every half second)."""
        spans = trace_of(settings, request_id)
        services = {span["localEndpoint"]["serviceName"] for span in spans}
        kinds = {span.get("kind") for span in spans}
        consumers = {span["localEndpoint"]["serviceName"] for span in spans if is_consumer(span)}
        complete = {"zentry-gateway", "sleep", "user"} <= services and "PRODUCER" in kinds
        return spans if complete and consumers >= NIGHT_CONSUMERS else None

    spans = eventually(whole, timeout=30, what="the night's trace, with every consumer in it")
    by_id = {span["id"]: span for span in spans}
    assert len(by_id) == len(spans), "a span id twice in one trace"
    service = lambda span: span["localEndpoint"]["serviceName"]  # noqa: E731

    def parent(span: dict) -> dict:
        assert span.get("parentId") in by_id, f"{span['name']} ({service(span)}) has no parent"
        return by_id[span["parentId"]]

    (root,) = [span for span in spans if "parentId" not in span]
    assert service(root) == "zentry-gateway" and root["kind"] == "SERVER"
    assert root["tags"]["http.status_code"] == "200"

    (create,) = [s for s in spans if s["name"] == "zentry.sleep.v1.sleepservice/createsleepentry"]
    assert service(create) == "sleep" and create["kind"] == "SERVER"
    assert parent(create) is root, "the sleep service continues the gateway's trace"
    assert create["tags"]["rpc.grpc.status_code"] == "0"

    statements = [s for s in spans if s["tags"].get("db.system.name") == "postgresql"]
    assert any(parent(s) is create for s in statements), "the create's statements"
    # The create reads its author's profile (read your own writes): a call to the user service.
    assert any(service(s) == "user" and service(parent(s)) == "sleep" for s in spans)

    (publish,) = [s for s in spans if s["kind"] == "PRODUCER"]
    assert service(publish) == "sleep" and publish["name"].startswith("publish ")
    assert parent(publish) is create, "the outbox relay continues the request that added it"

    consumed = defaultdict(list)
    for span in spans:
        if is_consumer(span):
            assert parent(span) is publish, f"{service(span)}'s consumer span"
            consumed[service(span)].append(span["tags"]["messaging.consumer.group.name"])
    assert set(consumed) == NIGHT_CONSUMERS

    # The fan-out's own work is in its batch's trace, which the event's span names.
    (fan_out,) = [s for s in spans if is_consumer(s) and service(s) == "feed"]
    batch_trace = f"{settings.zipkin.url}/api/v2/trace/{fan_out['tags']['zentry.batch.trace_id']}"

    def batch_systems() -> set[str] | None:
        found = httpx.get(batch_trace, timeout=5)
        systems = (
            {s["tags"].get("db.system.name") for s in found.json()} if found.is_success else set()
        )
        return systems if {"postgresql", "redis"} <= systems else None

    # Its timeline writes come after its commit, and may reach Zipkin a moment later.
    eventually(batch_systems, timeout=15, what="the fan-out batch's SQL and Redis writes")


def test_a_callers_trace_context_is_not_taken_from_the_internet(api, new_account, settings):
    """A client cannot make a request join (or force the sampling of) a trace it names."""
    owner = new_account()
    chosen = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = api.get(
        "/v1/users/me",
        headers={**owner.auth, "traceparent": f"00-{chosen}-00f067aa0ba902b7-01"},
    )
    assert response.status_code == 200
    spans = eventually(
        lambda: trace_of(settings, response.headers["x-request-id"]) or None,
        timeout=20,
        what="the request's trace",
    )
    assert {span["traceId"] for span in spans} != {chosen}
    assert all(span["traceId"] != chosen for span in spans)


def scrape(port: int) -> dict[str, dict[tuple, float]]:
    """Every sample of one /metrics page: name → {sorted labels: value}."""
    page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).raise_for_status().text
    samples: dict[str, dict[tuple, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for key, v in samples.get(name, {}).items() if wanted <= set(key))


def instances(mesh: Mesh, service: str, role: str | None = None) -> list[Child]:
    return [c for c in mesh.instances if c.service == service and role in (None, c.role)]


def test_every_instance_serves_metrics_that_move_with_requests_and_events(api, new_account, mesh):
    before = {child.name: scrape(child.metrics_port) for child in mesh.instances}
    for samples in before.values():
        assert "process_cpu_seconds_total" in samples
    owner = new_account()
    for days_ago in (5, 6):
        response = api.post("/v1/sleepEntries", headers=owner.auth, json=a_night(days_ago))
        assert response.status_code == 200, response.text

    def moved(service: str, name: str, role: str | None = None, **labels: str) -> float:
        return sum(
            total(scrape(child.metrics_port), name, **labels)
            - total(before[child.name], name, **labels)
            for child in instances(mesh, service, role)
        )

    created = moved(
        "sleep",
        "grpc_server_handled_total",
        grpc_service="zentry.sleep.v1.SleepService",
        grpc_method="CreateSleepEntry",
        grpc_code="OK",
    )
    assert created == 2
    timed = moved(
        "sleep",
        "grpc_server_handling_seconds_count",
        grpc_method="CreateSleepEntry",
        grpc_code="OK",
    )
    assert timed == 2
    assert moved("user", "grpc_server_handled_total", grpc_method="CreateSession") >= 1

    def applied() -> bool:
        published = moved("sleep", "zentry_outbox_published_total")
        return published >= 2 and all(
            moved(service, "zentry_events_applied_total", "consumer", group=group) >= 2
            for service, group in NIGHT_GROUPS.items()
        )

    eventually(applied, timeout=30, what="the nights relayed and applied by every consumer")
    for service in ("sleep", "feed"):
        pools = [scrape(child.metrics_port) for child in instances(mesh, service, "api")]
        assert all(total(p, "zentry_db_pool_max_connections") > 0 for p in pools)
    lags = [
        scrape(child.metrics_port).get("zentry_consumer_lag", {})
        for child in instances(mesh, "leaderboard", "consumer")
    ]
    assert any(lags), "the leaderboard's consumer reports its partitions' lag"
    assert all(value >= 0 for lag in lags for value in lag.values())
