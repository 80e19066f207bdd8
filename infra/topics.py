"""The declared Kafka topics (infra/topics.toml) and their creation on a broker."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from infra.errors import InfraError
from services.kit.addresses import kafka_security
from services.kit.topics import DEAD_LETTER_SUFFIX, dead_letter_topic

DECLARATION = Path(__file__).with_name("topics.toml")
KEEP_FOREVER = -1


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    retention_ms: int
    description: str
    #: The service whose Kafka user may write it (a dead-letter topic: its source's readers).
    writers: tuple[str, ...] = ()
    #: The services whose users may read it with their own groups.
    readers: tuple[str, ...] = ()

    @property
    def config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": "delete"}


def declared(text: str | None = None) -> list[Topic]:
    """Every declared topic followed by its dead-letter topic; raises InfraError if malformed."""
    source = DECLARATION.read_text() if text is None else text
    try:
        entries = tomllib.loads(source).get("topic", [])
        topics = [
            Topic(
                name=str(entry["name"]),
                partitions=int(entry["partitions"]),
                retention_ms=int(entry["retention_ms"]),
                description=str(entry.get("description", "")),
                writers=(str(entry["writer"]),) if "writer" in entry else (),
                readers=tuple(str(reader) for reader in entry.get("readers", ())),
            )
            for entry in entries
        ]
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InfraError(f"{DECLARATION} is malformed: {exc}") from exc
    names = [t.name for t in topics]
    for topic in topics:
        if topic.partitions < 1:
            raise InfraError(f"topic {topic.name} needs at least one partition")
        if topic.retention_ms < KEEP_FOREVER or topic.retention_ms == 0:
            raise InfraError(f"topic {topic.name}: retention_ms must be -1 (forever) or positive")
        if topic.name.endswith(DEAD_LETTER_SUFFIX) or names.count(topic.name) > 1:
            raise InfraError(f"topic {topic.name} is declared twice or as a dead-letter topic")
    dead_letters = [
        Topic(dead_letter_topic(t.name), 1, KEEP_FOREVER, f"Dead letters of {t.name}.", t.readers)
        for t in topics
    ]
    return topics + dead_letters


def ensure(bootstrap_servers: str, topics: list[Topic], timeout: float = 30.0) -> list[str]:
    """Create missing topics, add missing partitions, apply settings; returns what it created.

    Idempotent. Partitions are never removed (Kafka cannot), and a topic with
    more partitions than declared is left as it is.
    """
    admin = AdminClient(
        {**kafka_security(), "bootstrap.servers": bootstrap_servers, "logger": quiet_logger()}
    )
    existing = admin.list_topics(timeout=timeout).topics
    missing = [t for t in topics if t.name not in existing]
    grow = [
        t for t in topics if t.name in existing and len(existing[t.name].partitions) < t.partitions
    ]
    try:
        if missing:
            futures = admin.create_topics(
                [NewTopic(t.name, t.partitions, 1, config=t.config) for t in missing],
                request_timeout=timeout,
            )
            _wait_all(futures, ignore="TOPIC_ALREADY_EXISTS")
        if grow:
            _wait_all(admin.create_partitions([NewPartitions(t.name, t.partitions) for t in grow]))
        present = [t for t in topics if t.name in existing]
        if present:
            resources = [
                ConfigResource(
                    ConfigResource.Type.TOPIC,
                    t.name,
                    incremental_configs=[
                        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                        for k, v in t.config.items()
                    ],
                )
                for t in present
            ]
            _wait_all(admin.incremental_alter_configs(resources))
    except KafkaException as exc:
        raise InfraError(f"Kafka topics could not be declared: {exc}") from exc
    return [t.name for t in missing]


def _wait_all(futures: dict, ignore: str | None = None) -> None:
    for future in futures.values():
        try:
            future.result()
        except Exception as exc:
            if ignore and ignore in str(exc):
                continue
            raise


def quiet_logger() -> logging.Logger:
    """librdkafka logs every refused connection; infra reports failures itself."""
    logger = logging.getLogger("infra.kafka.client")
    logger.setLevel(logging.CRITICAL)
    logger.propagate = False
    return logger
