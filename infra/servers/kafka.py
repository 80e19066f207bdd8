"""Apache Kafka, the real broker: Maven Central's jars on the machine's Java, in KRaft mode.

One node is both broker and controller. Automatic topic creation is off: the
topics come from infra/topics.toml and are created once the broker answers.

Clients log in with SASL/SCRAM-SHA-512 and are authorised by ACLs, as Strimzi's
KafkaUsers are in k8s/: the administrator (LOCAL_ADMIN, also the broker's own
user) is a super user, bootstrapped into the log when it is formatted; each
service's user (infra.credentials) is created once the broker answers, with the
ACLs infra/topics.toml gives it. The controller listener takes SASL/PLAIN from
the administrator only.
"""

from __future__ import annotations

import base64
import uuid

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from infra import credentials, install, topics
from infra.config import Settings
from infra.errors import InfraError
from infra.processes import run_logged
from infra.servers.base import Command, Port, Server
from services.kit.roster import SERVICES

#: How clients log in (librdkafka's and Kafka's name alike).
MECHANISM = "SCRAM-SHA-512"
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
                **self.settings.kafka.security(),
                "bootstrap.servers": self.settings.kafka.bootstrap_servers,
                "logger": topics.quiet_logger(),
            }
        )
        if not admin.list_topics(timeout=2).brokers:
            raise RuntimeError("the metadata response lists no broker")

    def prepare(self) -> None:
        super().prepare()
        properties = self.data_dir / "server.properties"
        properties.write_text(self._server_properties())
        properties.chmod(0o600)  # it holds the administrator's password (the JAAS lines)
        (self.data_dir / "log4j2.xml").write_text(LOG4J_CONFIG)
        formatted_with_logins = self.data_dir / "formatted-with-logins"
        if (self.data_dir / "log" / "meta.properties").exists():
            if not formatted_with_logins.exists():
                raise InfraError(
                    f"Kafka's log in {self.data_dir} was formatted before Kafka had logins: "
                    "stop it (`make infra-down`), delete that folder (its topics and events) "
                    "and run `make infra-up` again, which formats it with the administrator"
                )
            return
        admin = self.settings.kafka
        cluster_id_file = self.data_dir / "cluster.id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(new_cluster_id())
        run_logged(
            [
                *self._java(), "kafka.tools.StorageTool", "format",
                "--cluster-id", cluster_id_file.read_text().strip(),
                "--config", str(properties),
                "--add-scram", f"{MECHANISM}=[name={admin.username},password={admin.password}]",
                "--ignore-formatted",
            ],
            self.process.log_file,
            "Kafka's storage tool could not format the log directory",
            secrets=(admin.password,),
        )  # fmt: skip
        formatted_with_logins.touch()

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
        declared = topics.declared()
        topics.ensure(self.settings.kafka.bootstrap_servers, declared)
        ensure_logins(self.settings, declared)

    def _server_properties(self) -> str:
        kafka = self.settings.kafka
        return "\n".join(
            [
                "# Written by `infra up` on every start; edit infra/servers/kafka.py instead.",
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{kafka.host}:{kafka.controller_port}",
                f"listeners=SASL_PLAINTEXT://{kafka.host}:{kafka.port},"
                f"CONTROLLER://{kafka.host}:{kafka.controller_port},"
                f"PROXIED://{kafka.host}:{kafka.proxied_port}",
                # PROXIED is for clients behind `make chaos`'s TCP proxy: it tells them to
                # reconnect to the proxy, not to the broker itself.
                f"advertised.listeners=SASL_PLAINTEXT://{kafka.host}:{kafka.port},"
                f"PROXIED://{kafka.host}:{kafka.proxy_port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=SASL_PLAINTEXT",
                "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,"
                "CONTROLLER:SASL_PLAINTEXT,PROXIED:SASL_PLAINTEXT",
                f"sasl.enabled.mechanisms={MECHANISM}",
                f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
                *(
                    f"listener.name.{listener}.{MECHANISM.lower()}.sasl.jaas.config="
                    f"{_jaas('scram.ScramLoginModule', kafka.username, kafka.password)}"
                    for listener in ("sasl_plaintext", "proxied")
                ),
                "sasl.mechanism.controller.protocol=PLAIN",
                "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
                "listener.name.controller.plain.sasl.jaas.config="
                + _jaas(
                    "plain.PlainLoginModule",
                    kafka.username,
                    kafka.password,
                    f'user_{kafka.username}="{kafka.password}"',
                ),
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                f"super.users=User:{kafka.username}",
                "allow.everyone.if.no.acl.found=false",
                f"log.dirs={self.data_dir / 'log'}",
                "auto.create.topics.enable=false",
                "num.partitions=6",
                "default.replication.factor=1",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                # Committed offsets kept 30 days without consumers (k8s/base/infra/kafka.yaml).
                "offsets.retention.minutes=43200",
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


def ensure_logins(settings: Settings, declared: list[topics.Topic]) -> None:
    """Each service's SCRAM user (its password from infra.credentials) and its ACLs:
    write the topics it writes, read the ones it reads with groups `<service>.*` (k8s/ names
    each group: security/kafka-users.yaml), write
    their dead-letter topics. Idempotent: an existing user's password is set again."""
    admin = AdminClient(
        {
            **settings.kafka.security(),
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "logger": topics.quiet_logger(),
        }
    )
    logins = {s: login for s, login in credentials.logins(settings).items() if s in SERVICES}
    upserts = [
        UserScramCredentialUpsertion(
            service,
            ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
            login.password.encode(),
        )
        for service, login in sorted(logins.items())
    ]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(timeout=30)
    bindings = [binding for service in sorted(logins) for binding in acls(service, declared)]
    for future in admin.create_acls(bindings, request_timeout=30).values():
        future.result()


def acls(service: str, declared: list[topics.Topic]) -> list[AclBinding]:
    """What `service`'s user may do: the topics it writes or reads, and its groups."""

    def allow(kind: ResourceType, name: str, pattern: ResourcePatternType, op: AclOperation):
        return AclBinding(kind, name, pattern, f"User:{service}", "*", op, AclPermissionType.ALLOW)

    literal = ResourcePatternType.LITERAL
    # Read to consume and commit, Describe and Delete for a replay starting its groups over.
    bindings = [
        allow(ResourceType.GROUP, f"{service}.", ResourcePatternType.PREFIXED, operation)
        for operation in (AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE)
    ]
    for topic in declared:
        if service in topic.writers:
            bindings.append(allow(ResourceType.TOPIC, topic.name, literal, AclOperation.WRITE))
        if service in topic.readers:
            bindings.append(allow(ResourceType.TOPIC, topic.name, literal, AclOperation.READ))
    return bindings


def _jaas(module: str, username: str, password: str, *more: str) -> str:
    """A JAAS line for one of Kafka's login modules (org.apache.kafka.common.security.*)."""
    options = " ".join([f'username="{username}"', f'password="{password}"', *more])
    return f"org.apache.kafka.common.security.{module} required {options};"


def new_cluster_id() -> str:
    """A Kafka cluster id as `kafka-storage random-uuid` makes: 16 random bytes, base64url.

    Like Kafka, never one starting with "-", which a command line would take for a flag.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
