"""Apache Kafka, the real broker: Maven Central's jars on the machine's Java, in KRaft mode.

One node is both broker and controller. Automatic topic creation is off: the
topics come from infra/topics.toml and are created once the broker answers.
"""

from __future__ import annotations

import base64
import uuid

from confluent_kafka.admin import AdminClient

from infra import install, topics
from infra.processes import run_logged
from infra.servers.base import Command, Port, Server

LOG4J_CONFIG = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="kafka" level="INFO"/>
    <Logger name="org.apache.kafka" level="INFO"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Root level="WARN"><AppenderRef ref="stdout"/></Root>
  </Loggers>
</Configuration>
"""


class Kafka(Server):
    name = "kafka"
    title = "Kafka"
    stop_timeout = 90.0

    def ports(self) -> list[Port]:
        kafka = self.settings.kafka
        return [
            Port("ZENTRY_KAFKA_PORT", kafka.port),
            Port("ZENTRY_KAFKA_CONTROLLER_PORT", kafka.controller_port),
            Port("ZENTRY_KAFKA_PROXIED_PORT", kafka.proxied_port),
        ]

    def probe(self) -> None:
        admin = AdminClient(
            {
                "bootstrap.servers": self.settings.kafka.bootstrap_servers,
                "logger": topics.quiet_logger(),
            }
        )
        if not admin.list_topics(timeout=2).brokers:
            raise RuntimeError("the metadata response lists no broker")

    def prepare(self) -> None:
        super().prepare()
        (self.data_dir / "server.properties").write_text(self._server_properties())
        (self.data_dir / "log4j2.xml").write_text(LOG4J_CONFIG)
        if (self.data_dir / "log" / "meta.properties").exists():
            return
        cluster_id_file = self.data_dir / "cluster.id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(new_cluster_id())
        run_logged(
            [
                *self._java(), "kafka.tools.StorageTool", "format",
                "--cluster-id", cluster_id_file.read_text().strip(),
                "--config", str(self.data_dir / "server.properties"),
                "--ignore-formatted",
            ],
            self.process.log_file,
            "Kafka's storage tool could not format the log directory",
        )  # fmt: skip

    def command(self) -> Command:
        return Command(
            argv=[
                *self._java(),
                "-Xms256m", f"-Xmx{self.settings.kafka.heap}",
                "-XX:+UseG1GC",
                "-XX:+ExitOnOutOfMemoryError",
                "-Djava.awt.headless=true",
                f"-Dkafka.logs.dir={self.settings.log_dir}",
                "kafka.Kafka",
                str(self.data_dir / "server.properties"),
            ],
        )  # fmt: skip

    def after_ready(self) -> None:
        topics.ensure(self.settings.kafka.bootstrap_servers, topics.declared())

    def _server_properties(self) -> str:
        kafka = self.settings.kafka
        return "\n".join(
            [
                "# Written by `infra up` on every start; edit infra/servers/kafka.py instead.",
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{kafka.host}:{kafka.controller_port}",
                f"listeners=PLAINTEXT://{kafka.host}:{kafka.port},"
                f"CONTROLLER://{kafka.host}:{kafka.controller_port},"
                f"PROXIED://{kafka.host}:{kafka.proxied_port}",
                # PROXIED is for clients behind `make chaos`'s TCP proxy: it tells them to
                # reconnect to the proxy, not to the broker itself.
                f"advertised.listeners=PLAINTEXT://{kafka.host}:{kafka.port},"
                f"PROXIED://{kafka.host}:{kafka.proxy_port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map="
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,PROXIED:PLAINTEXT",
                f"log.dirs={self.data_dir / 'log'}",
                "auto.create.topics.enable=false",
                "num.partitions=6",
                "default.replication.factor=1",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                # Tests and local runs start consumer groups often; a single node needs no delay.
                "group.initial.rebalance.delay.ms=0",
                "",
            ]
        )

    def _java(self) -> list[str]:
        install.require_java(self.settings)
        libs = install.kafka_libs(self.settings)
        return [
            self.settings.java,
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.xml'}",
            "-cp",
            f"{libs}/*",
        ]


def new_cluster_id() -> str:
    """A Kafka cluster id as `kafka-storage random-uuid` makes: 16 random bytes, base64url.

    Like Kafka, never one starting with "-", which a command line would take for a flag.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
