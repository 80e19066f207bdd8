"""Local data survives `make infra-down && make infra-up`."""

from __future__ import annotations

import os
import subprocess
import sys

from confluent_kafka import Consumer, Producer

from infra.config import Settings
from infra.servers.kafka import Kafka
from tests.support import eventually, unique


def _infra(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )
    assert result.returncode == 0, f"infra {args[0]} failed:\n{result.stdout}{result.stderr}"


def test_a_kafka_message_survives_infra_down_and_up(settings: Settings, new_topic):
    topic, value = new_topic("itest-durable"), unique("night").encode()
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"})
    producer.produce(topic, key=b"user-1", value=value)
    assert producer.flush(30) == 0
    broker_before = Kafka(settings).process.running()

    _infra("down")
    assert Kafka(settings).process.running() is None
    _infra("up")

    broker_after = Kafka(settings).process.running()
    if broker_before is not None:  # a broker we do not manage is not restarted by infra
        assert broker_after is not None and broker_after.pid != broker_before.pid
    consumer = Consumer(
        {
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
        assert message.value() == value
    finally:
        consumer.close()
