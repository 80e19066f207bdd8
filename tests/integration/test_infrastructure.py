"""Real round trips through each of the servers that `make infra-up` starts."""

from __future__ import annotations

import time
import uuid
from concurrent import futures

import consul
import grpc
import httpx
import psycopg
import pytest
import redis
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from infra import topics
from infra.config import SERVICES_WITH_DATABASE, Settings, database_name
from infra.processes import free_port
from services.kit.addresses import kafka_security
from tests.support import eventually, unique


@pytest.mark.parametrize("service", SERVICES_WITH_DATABASE)
def test_each_service_has_its_own_database(settings: Settings, service: str):
    database = database_name(service)
    with psycopg.connect(settings.postgres.dsn(database)) as conn:
        conn.execute("CREATE TEMPORARY TABLE night (id int PRIMARY KEY, minutes int NOT NULL)")
        conn.execute("INSERT INTO night VALUES (1, 455), (2, 390)")
        row = conn.execute("SELECT current_database(), sum(minutes) FROM night").fetchone()
    assert row == (database, 845)


def test_redis_sorted_set_round_trip(settings: Settings):
    client = redis.Redis.from_url(settings.redis.url(), decode_responses=True)
    key = unique("itest:board")
    try:
        client.zadd(key, {"ada": 455, "bo": 390, "cy": 510})
        assert client.zrevrange(key, 0, -1, withscores=True) == [
            ("cy", 510.0),
            ("ada", 455.0),
            ("bo", 390.0),
        ]
    finally:
        client.delete(key)
        client.close()


def test_declared_topics_exist_with_their_partitions_and_retention(settings: Settings, kafka_admin):
    declared = topics.declared()
    present = kafka_admin.list_topics(timeout=10).topics
    for topic in declared:
        assert topic.name in present, f"{topic.name} was not created"
        assert len(present[topic.name].partitions) == topic.partitions
    resources = [ConfigResource(ConfigResource.Type.TOPIC, t.name) for t in declared]
    for resource, future in kafka_admin.describe_configs(resources).items():
        retention = future.result(timeout=10)["retention.ms"].value
        expected = next(t.retention_ms for t in declared if t.name == resource.name)
        assert int(retention) == expected, resource.name
    domain = {"zentry.user.events", "zentry.sleep.events"}
    assert {t.name: t.retention_ms for t in declared if t.name in domain} == dict.fromkeys(
        domain, -1
    )
    assert {topics.dead_letter_topic(name) for name in domain} <= set(present)


def test_topics_are_never_created_by_accident(settings: Settings, kafka_admin):
    broker = ConfigResource(ConfigResource.Type.BROKER, "1")
    config = kafka_admin.describe_configs([broker])[broker].result(timeout=10)
    assert config["auto.create.topics.enable"].value == "false"

    stray = unique("itest-undeclared")
    metadata = kafka_admin.list_topics(topic=stray, timeout=10)
    assert metadata.topics[stray].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert stray not in kafka_admin.list_topics(timeout=10).topics


def test_consumer_group_resumes_after_the_committed_offset(settings: Settings, new_topic):
    topic = new_topic()
    producer = Producer({**kafka_security(), "bootstrap.servers": settings.kafka.bootstrap_servers})
    for n in range(10):
        producer.produce(topic, key=b"user-1", value=f"night-{n}".encode())
    assert producer.flush(30) == 0

    group = unique("itest-group")
    first = _consumer(settings, group)
    first.subscribe([topic])
    seen = [_next_value(first) for _ in range(4)]
    assert seen == ["night-0", "night-1", "night-2", "night-3"]
    first.commit(asynchronous=False)  # after the (here trivial) effect, never automatically
    committed = first.committed([TopicPartition(topic, 0)], timeout=10)
    assert committed[0].offset == 4
    first.close()

    second = _consumer(settings, group)
    second.subscribe([topic])
    try:
        assert _next_value(second) == "night-4"
    finally:
        second.close()


def test_consul_grpc_check_follows_a_real_health_server(settings: Settings):
    agent = consul.Consul(
        host=settings.consul.host, port=settings.consul.http_port, token=settings.consul.token
    )
    name, port = unique("itest-svc"), free_port()
    agent.agent.service.register(
        name,
        service_id=f"{name}-1",
        address="127.0.0.1",
        port=port,
        check=consul.Check.grpc(f"127.0.0.1:{port}", "1s", timeout="1s", deregister="1m"),
    )
    server = None
    try:
        eventually(
            lambda: _check_status(agent, name) == "critical",
            timeout=15,
            what="the check is critical while nothing answers",
        )
        assert _healthy(agent, name) == []

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        servicer = health.HealthServicer()
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        assert server.add_insecure_port(f"127.0.0.1:{port}") == port
        server.start()
        eventually(
            lambda: _healthy(agent, name) == [f"{name}-1"],
            timeout=15,
            what="the instance is listed as healthy once its health server says SERVING",
        )

        server.stop(grace=None).wait()
        server = None
        eventually(
            lambda: _healthy(agent, name) == [],
            timeout=15,
            what="the instance leaves the healthy list once its server stops",
        )
        assert _check_status(agent, name) == "critical"
    finally:
        if server is not None:
            server.stop(grace=None)
        agent.agent.service.deregister(f"{name}-1")


def test_envoy_is_ready_and_its_admin_listens_on_loopback(settings: Settings):
    ready = httpx.get(f"{settings.envoy.admin_url}/ready", timeout=5)
    assert (ready.status_code, ready.text.strip()) == (200, "LIVE")
    dump = httpx.get(f"{settings.envoy.admin_url}/config_dump", timeout=5).raise_for_status()
    bootstrap = next(
        c for c in dump.json()["configs"] if c["@type"].endswith("BootstrapConfigDump")
    )
    admin = bootstrap["bootstrap"]["admin"]
    assert admin["address"]["socket_address"]["address"] == "127.0.0.1"


def _consumer(settings: Settings, group: str) -> Consumer:
    return Consumer(
        {
            **kafka_security(),
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "client.id": f"itest-{uuid.uuid4().hex[:6]}",
        }
    )


def _next_value(consumer: Consumer, timeout: float = 30.0) -> str:
    def poll():
        message = consumer.poll(1.0)
        if message is None:
            return None
        assert message.error() is None, message.error()
        return message.value().decode()

    return eventually(poll, timeout=timeout, what="a message arrives", interval=0)


def _healthy(agent: consul.Consul, name: str) -> list[str]:
    _, entries = agent.health.service(name, passing=True)
    return [entry["Service"]["ID"] for entry in entries]


def _check_status(agent: consul.Consul, name: str) -> str | None:
    _, checks = agent.health.checks(name)
    return checks[0]["Status"] if checks else None


def test_zipkin_keeps_the_spans_it_is_sent_and_listens_on_loopback(settings: Settings):
    """What the services' exporter and Envoy's tracer send (JSON v2) comes back by trace id."""
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    span = {
        "traceId": trace_id,
        "id": span_id,
        "name": "probe",
        "kind": "SERVER",
        "timestamp": int(time.time() * 1_000_000),  # now: Zipkin drops the oldest first
        "duration": 1000,
        "localEndpoint": {"serviceName": "itest"},
        "tags": {"probe": unique("tag")},
    }
    sent = httpx.post(settings.zipkin.spans_url, json=[span], timeout=5)
    assert sent.status_code == 202, sent.text

    def stored() -> list[dict]:
        found = httpx.get(f"{settings.zipkin.url}/api/v2/trace/{trace_id}", timeout=5)
        return found.json() if found.status_code == 200 else []

    (back,) = eventually(stored, timeout=10, what="the span stored")
    assert (back["id"], back["tags"]) == (span_id, span["tags"])
    assert _listeners(settings.zipkin.port), "Zipkin listens"
    assert all(address.strip("0") for address in _listeners(settings.zipkin.port)), (
        "Zipkin listens on this machine's every address, not on loopback only"
    )


def _listeners(port: int) -> list[str]:
    """The local addresses (hex, as /proc/net/tcp* gives them) listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                local, state = row.split()[1], row.split()[3]
                address, _, hex_port = local.partition(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.append(address)
    return found
