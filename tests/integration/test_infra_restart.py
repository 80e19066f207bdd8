"""Local data survives `make infra-down && make infra-up`, and `infra up` is idempotent."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import redis
from confluent_kafka import Consumer, Producer

from infra.config import Settings, database_name
from infra.lifecycle import SERVER_TYPES
from infra.servers.kafka import Kafka
from services.kit.addresses import kafka_security
from tests.support import eventually, unique


def _infra(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "infra", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )
    assert result.returncode == 0, f"infra {args[0]} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def test_infra_up_twice_starts_nothing_the_second_time():
    lines = _infra("up").splitlines()
    assert len(lines) == len(SERVER_TYPES), lines
    assert all(line.split()[1] in ("running", "external") for line in lines), lines


def test_data_survives_infra_down_and_up(settings: Settings, new_topic):
    topic, value = new_topic("itest-durable"), unique("night").encode()
    producer = Producer(
        {**kafka_security(), "bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"}
    )
    producer.produce(topic, key=b"user-1", value=value)
    assert producer.flush(30) == 0
    table, key = unique("itest_durable").replace("-", "_"), unique("itest:durable")
    dsn = settings.postgres.dsn(database_name("user"))
    with psycopg.connect(dsn) as conn:
        conn.execute(f"CREATE TABLE {table} (note text)")
        conn.execute(f"INSERT INTO {table} VALUES (%s)", (value.decode(),))
    cache = redis.Redis.from_url(settings.redis.url())
    cache.zadd(key, {"ada": 455})
    # A transaction too: the append-only file replays it as Redis' `default` user, and Redis
    # 7.0 drops it if that user may not run it (infra.servers.redis.acl_file).
    with cache.pipeline(transaction=True) as multi:
        multi.zadd(key, {"bo": 390}).expire(key, 3600)
        multi.execute()
    broker_before = Kafka(settings).process.running()

    _infra("down")
    assert Kafka(settings).process.running() is None
    _infra("up")

    broker_after = Kafka(settings).process.running()
    if broker_before is not None:  # a broker we do not manage is not restarted by infra
        assert broker_after is not None and broker_after.pid != broker_before.pid
    assert _first_message(settings, topic) == value
    with psycopg.connect(dsn) as conn:
        assert conn.execute(f"SELECT note FROM {table}").fetchall() == [(value.decode(),)]
        conn.execute(f"DROP TABLE {table}")
    assert cache.zscore(key, "ada") == 455
    assert cache.zscore(key, "bo") == 390
    cache.delete(key)
    cache.close()


def _first_message(settings: Settings, topic: str) -> bytes:
    consumer = Consumer(
        {
            **kafka_security(),
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": unique("itest-after-restart"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    try:
        message = eventually(
            lambda: consumer.poll(1.0), timeout=60, what="the message is consumable after restart"
        )
        assert message.error() is None, message.error()
        return message.value()
    finally:
        consumer.close()
