"""ZENTRY_ROLE against the real servers: a consumer-only instance and an API-only one.

Kubernetes runs the two halves of the sleep service as separate Deployments;
these start each as a real process and check what it does and does not do.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

import grpc
import httpx
import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from zentry.events.v1 import user_events_pb2 as uev
from zentry.sleep.v1 import sleep_service_pb2, sleep_service_pb2_grpc

from infra.mesh import Mesh
from infra.processes import free_port
from services.kit.addresses import kafka_security
from services.kit.events import USER_EVENTS, envelope
from services.kit.healthcheck import check
from services.sleep.projector import PROFILES_GROUP
from tests.support import eventually


@pytest.fixture
def mesh(settings):
    mesh = Mesh(settings)
    yield mesh
    mesh.stop_all()


def publish_registration(settings) -> str:
    """A UserRegistered event for a new user, as the user service would publish it."""
    user_id = str(uuid.uuid4())
    profile = uev.UserProfile(user_id=user_id, username=f"r{user_id[:8]}", time_zone="Asia/Seoul")
    event = envelope(uev.UserRegistered(profile=profile), user_id, "user")
    producer = Producer({**kafka_security(), "bootstrap.servers": settings.kafka.bootstrap_servers})
    producer.produce(USER_EVENTS, key=user_id, value=event.SerializeToString())
    assert producer.flush(10) == 0
    return user_id


def directory_has(settings, user_id: str) -> bool:
    with psycopg.connect(settings.postgres.dsn("zentry_sleep")) as conn:
        return conn.execute("SELECT 1 FROM users WHERE id = %s", (user_id,)).fetchone() is not None


def consul_ids(settings) -> set[str]:
    services = httpx.get(f"{settings.consul.http_url}/v1/agent/services", timeout=5).json()
    return set(services)


def healthcheck(port: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.kit.healthcheck", "--address", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_consumer_instance_consumes_serves_only_health_and_stays_out_of_consul(settings, mesh):
    port = free_port()
    child = mesh.start_service("sleep", port, {"ZENTRY_ROLE": "consumer"})
    eventually(
        lambda: healthcheck(port).returncode == 0, timeout=60, what="the consumer reports SERVING"
    )
    assert "SERVING" in healthcheck(port).stdout
    assert child.instance_id not in consul_ids(settings), "callers must not find a consumer"

    user_id = publish_registration(settings)
    eventually(
        lambda: directory_has(settings, user_id),
        timeout=30,
        what="the consumer instance applied the UserRegistered event",
    )
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = sleep_service_pb2_grpc.SleepServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetSleepEntry(sleep_service_pb2.GetSleepEntryRequest(id="x"), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert mesh.stop(child, signal.SIGTERM) == 0
    assert healthcheck(port).returncode == 1, "nothing answers once it has stopped"


def test_an_api_instance_serves_and_registers_but_does_not_consume(settings, mesh):
    api = mesh.start_service("sleep", 0, {"ZENTRY_ROLE": "api"})
    port = mesh.wait_healthy(api)
    assert check(f"127.0.0.1:{port}", "zentry.sleep.v1.SleepService") == "SERVING"
    # A consumer instance started after it applies an event: the group is live now, and
    # an API instance that consumed would be a member of it beside the consumer.
    mesh.start_service("sleep", free_port(), {"ZENTRY_ROLE": "consumer"})
    user_id = publish_registration(settings)
    eventually(
        lambda: directory_has(settings, user_id),
        timeout=60,
        what="the consumer instance applied the UserRegistered event",
    )
    admin = AdminClient({**kafka_security(), "bootstrap.servers": settings.kafka.bootstrap_servers})
    group = admin.describe_consumer_groups([PROFILES_GROUP])[PROFILES_GROUP].result(timeout=10)
    assert len(group.members) == 1, "the consumer instance alone; the API instance never joined"


def test_a_service_without_consumers_refuses_the_consumer_role(settings, mesh):
    child = mesh.start_service("user", free_port(), {"ZENTRY_ROLE": "consumer"})
    assert child.process.wait(60) == 2
    assert "consumes no topic" in child.log.read_text()
