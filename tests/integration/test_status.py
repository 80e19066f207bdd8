"""`infra status --mesh` against the real servers: each view finds what a test put there.

The servers hold other runs' data, so every test makes its own topics, groups,
rows and Consul services, and asserts only on those.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic
from sqlalchemy.engine import make_url

from infra import meshstatus
from infra.meshstatus import GroupLag, MeshStatus, OutboxBacklog, ParkedCount, Thresholds
from infra.processes import free_port
from services.kit.addresses import kafka_security
from tests.support import eventually, unique


@pytest.fixture
def consul_service(settings):
    """Register instances of a service of the test's own, each with a TTL check set to the
    status wanted (no process needs to answer); deregistered after. Yields (name, register)."""
    name = unique("itest-status")
    registered: list[str] = []
    http = httpx.Client(
        base_url=settings.consul.http_url,
        headers={"X-Consul-Token": settings.consul.token},
        timeout=5,
    )

    def register(instance_id: str, status: str, output: str = "") -> None:
        check = f"{instance_id}:ttl"
        http.put(
            "/v1/agent/service/register",
            json={
                "ID": instance_id,
                "Name": name,
                "Address": "127.0.0.1",
                "Port": 1,
                # Passing first: Consul syncs a change of status (with its output) to the
                # catalog at once, a change of output alone only every few minutes.
                "Check": {"CheckID": check, "Name": "ttl", "TTL": "10m", "Status": "passing"},
            },
        ).raise_for_status()
        registered.append(instance_id)
        http.put(
            f"/v1/agent/check/update/{check}", json={"Status": status, "Output": output}
        ).raise_for_status()

    yield name, register
    for instance_id in registered:
        http.put(f"/v1/agent/service/deregister/{instance_id}")
    http.close()


@pytest.fixture
def topic_with_partitions(kafka_admin):
    """A topic of the test's own with three partitions; deleted after."""
    name = unique("itest-status")
    kafka_admin.create_topics([NewTopic(name, 3, 1)])[name].result(timeout=30)
    yield name
    kafka_admin.delete_topics([name])[name].result(timeout=30)


@pytest.fixture
def groups(kafka_admin):
    """Names consumer groups of the test's own; deletes them after."""
    made: list[str] = []

    def make(prefix: str = "itest-status") -> str:
        made.append(unique(prefix))
        return made[-1]

    yield make
    if made:
        everything = [*made, *(f"{g}.redrive" for g in made)]
        for future in kafka_admin.delete_consumer_groups(everything).values():
            with contextlib.suppress(KafkaException):  # a group never made (no .redrive)
                future.result(timeout=30)


@pytest.fixture
def database_without_outbox(settings):
    """A database of the test's own with no tables, as a service that publishes nothing has."""
    from infra.servers.postgres import scratch_database

    with scratch_database(settings.postgres, unique("ztest_quiet").replace("-", "_")) as url:
        yield url


def produce(bootstrap: str, topic: str, counts: dict[int, int], headers=None) -> None:
    producer = Producer({**kafka_security(), "bootstrap.servers": bootstrap})
    for partition, count in counts.items():
        for n in range(count):
            producer.produce(topic, value=b"%d" % n, partition=partition, headers=headers)
    assert producer.flush(30) == 0


def commit(bootstrap: str, group: str, offsets: list[TopicPartition]) -> None:
    """Commit `offsets` for `group` without joining it (as a redrive marks its progress)."""
    consumer = Consumer({**kafka_security(), "bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def test_an_instance_not_passing_is_shown_with_its_checks_output(settings, consul_service):
    name, register = consul_service
    register(f"{name}-1", "passing")
    register(f"{name}-2", "critical", "rpc error: code = Unavailable desc = connection refused")

    def both():
        found = [i for i in meshstatus.instances(settings.consul.http_url) if i.service == name]
        return found if {i.status for i in found} == {"passing", "critical"} else None

    passing, critical = eventually(both, timeout=15, what=f"{name}'s two instances in Consul")
    assert (passing.instance_id, passing.status, passing.output) == (f"{name}-1", "passing", "")
    assert passing.address == "127.0.0.1:1"
    assert critical.instance_id == f"{name}-2"
    assert "connection refused" in critical.output
    needs = meshstatus.attention(MeshStatus(instances=[passing, critical]))
    assert len(needs) == 1
    assert f"{name}-2" in needs[0]
    assert "critical" in needs[0]


def test_lag_is_summed_over_partitions_with_the_worst_one_and_the_members(
    settings, topic_with_partitions, groups
):
    bootstrap, topic, group = settings.kafka.bootstrap_servers, topic_with_partitions, groups()
    produce(bootstrap, topic, {0: 5, 1: 2})
    # Partition 0 read up to 1 (4 behind), 1 never committed (2 behind, from the earliest),
    # 2 empty.
    commit(bootstrap, group, [TopicPartition(topic, 0, 1)])

    def lag():
        found, _others, _parked = meshstatus.kafka_views(bootstrap, lambda g: g == group)
        return found

    (found,) = eventually(lag, timeout=15, what=f"group {group} listed by Kafka")
    assert found == GroupLag(
        group=group,
        topic=topic,
        lag=6,
        worst_partition=0,
        worst_lag=4,
        members=0,
        state="empty",
    )
    assert meshstatus.attention(MeshStatus(lag=[found]), Thresholds(max_lag=6)) == []
    (line,) = meshstatus.attention(MeshStatus(lag=[found]), Thresholds(max_lag=5))
    assert group in line
    assert "nobody consumes it" in line


def test_parked_events_count_per_group_until_a_redrive_passes_them(settings, new_topic, groups):
    bootstrap = settings.kafka.bootstrap_servers
    topic = new_topic("itest-status", dead_letters=True)
    dlt, group = f"{topic}.dlt", groups()
    headers = [
        ("zentry-dlt-group", group.encode()),
        ("zentry-dlt-topic", topic.encode()),
        ("zentry-dlt-partition", b"0"),
        ("zentry-dlt-offset", b"7"),
        ("zentry-dlt-error", b"ValueError: a night ends before it starts"),
        ("zentry-dlt-attempts", b"3"),
    ]
    produce(bootstrap, dlt, {0: 2}, headers=headers)

    def parked_of_the_test():
        _lag, _others, parked = meshstatus.kafka_views(bootstrap, lambda _g: False)
        return [p for p in parked if p.dead_letter_topic == dlt]

    assert parked_of_the_test() == [ParkedCount(dlt, group, parked=2, waiting=2)]
    (line,) = meshstatus.attention(MeshStatus(parked=parked_of_the_test()))
    assert f"make redrive GROUP={group}" in line

    commit(bootstrap, f"{group}.redrive", [TopicPartition(dlt, 0, 1)])
    assert parked_of_the_test() == [ParkedCount(dlt, group, parked=2, waiting=1)]
    commit(bootstrap, f"{group}.redrive", [TopicPartition(dlt, 0, 2)])
    re_driven = parked_of_the_test()
    assert re_driven == [ParkedCount(dlt, group, parked=2, waiting=0)]
    assert meshstatus.attention(MeshStatus(parked=re_driven)) == []


def test_outbox_rows_waiting_their_age_and_databases_without_one(
    scratch_database, database_without_outbox
):
    conninfo = make_url(scratch_database).set(drivername="postgresql")
    with psycopg.connect(conninfo.render_as_string(False)) as conn:
        for seconds in (95, 2):
            conn.execute(
                "INSERT INTO outbox (event_id, topic, key, event_type, envelope, created_at)"
                " VALUES (%s, 'zentry.user.events', 'u1', 'test', '', now() - %s::interval)",
                (unique("event"), f"{seconds} seconds"),
            )
    missing = make_url(scratch_database).set(database=unique("ztest_none").replace("-", "_"))

    found = meshstatus.outbox_backlogs(
        {
            "busy": scratch_database,
            "quiet": database_without_outbox,
            "never-started": missing.render_as_string(False),
        }
    )

    busy, quiet, never_started = found
    assert (busy.service, busy.state, busy.waiting) == ("busy", "ok", 2)
    assert 95 <= busy.oldest_seconds < 95 + 60
    quiet_name = make_url(database_without_outbox).database
    assert quiet == OutboxBacklog("quiet", quiet_name, "no outbox")
    assert never_started == OutboxBacklog("never-started", missing.database, "no database")
    (line,) = meshstatus.attention(MeshStatus(outbox=found))
    assert "outbox of busy: 2 event(s) waiting" in line
    assert meshstatus.attention(MeshStatus(outbox=found), Thresholds(max_outbox_age=600)) == []


def test_all_is_well_exits_0_and_says_so():
    calm = MeshStatus(instances=[], lag=[], outbox=[], parked=[])
    assert meshstatus.exit_code(calm) == 0
    assert meshstatus.render(calm).endswith("all is well")
    assert meshstatus.exit_code(MeshStatus(unreachable=["Kafka does not answer"])) == 1


@pytest.mark.parametrize(
    ("group", "shown"),
    [
        ("feed.entries", True),
        ("analytics.rollups", True),
        ("feed.entries.redrive", False),
        ("analytics.rollups.bench-an-d67164c3", False),
        ("user.anything", False),  # the user service consumes nothing
        ("itest-status-1234", False),
    ],
)
def test_the_mesh_groups_are_the_consuming_services_own(group, shown):
    assert meshstatus.is_mesh_group(group) is shown


def run_status(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m infra status --mesh ...` with a run directory of its own (it stops nothing)."""
    environ = {**os.environ, "ZENTRY_RUN_DIR": str(tmp_path / "run"), **env}
    return subprocess.run(
        [sys.executable, "-m", "infra", "status", "--mesh", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
    )


def test_the_command_exits_3_on_an_instance_not_passing(settings, consul_service, tmp_path):
    name, register = consul_service
    register(f"{name}-1", "critical", "gRPC health: NOT_SERVING")
    eventually(
        lambda: any(
            i.service == name and i.status == "critical"
            for i in meshstatus.instances(settings.consul.http_url)
        ),
        timeout=15,
        what=f"{name} critical in Consul",
    )

    result = run_status(tmp_path, "--json")

    assert result.returncode == 3, result.stdout + result.stderr
    report = json.loads(result.stdout)
    (mine,) = [i for i in report["instances"] if i["service"] == name]
    assert (mine["status"], mine["output"]) == ("critical", "ttl: gRPC health: NOT_SERVING")
    assert any(f"{name}-1" in line for line in report["attention"])
    assert {s["server"] for s in report["servers"]} >= {"postgres", "kafka", "consul"}


def test_the_command_names_a_server_it_cannot_reach_and_exits_1(tmp_path):
    port = free_port()
    result = run_status(tmp_path, ZENTRY_CONSUL_HTTP_PORT=str(port))

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"Consul does not answer at http://127.0.0.1:{port}" in line
    assert "OUTBOX" in result.stdout  # what could be read is still shown
