"""The credentials, Kafka ACLs, certificates, Redis HA and PostgreSQL connection budget of
the rendered k8s/ manifests (issue 25): what `make k8s-validate`'s schemas cannot check.

- Kafka: each service's KafkaUser ACLs are exactly what its code publishes and consumes
  (its outbox topic, its consumer groups and their topics, from the code itself) with
  infra/topics.toml's dead-letter topics;
- nothing secret is committed: no Secret objects, every password, token or key comes from
  a secretKeyRef or a mounted Secret, and every Secret named is made by an operator or has
  its `kubectl create secret` command in k8s/README.md;
- each service logs in to Kafka, Redis and Consul as itself, and serves mutual TLS with the
  certificate that names it;
- Redis runs as three pods on three nodes, with a budget, and the services list every
  Sentinel;
- the PostgreSQL connections add up (base/infra/postgres.yaml, the table in k8s/README.md).
"""

from __future__ import annotations

import copy
import re
from unittest import mock

import pytest

from infra import config, k8s
from infra.topics import declared
from services.analytics.product.rollups import Rollups
from services.analytics.stats.projector import Projector as AnalyticsStats
from services.feed.projector import Projector as FeedProjector
from services.kit.events import CLIENT_EVENTS, SLEEP_EVENTS, USER_EVENTS
from services.kit.topics import dead_letter_topic
from services.leaderboard.projector import Projector as LeaderboardProjector
from services.sleep.projector import Projector as SleepProjector
from tests.unit.test_k8s_manifests import OVERLAYS, REPO, env_of, objects, service_containers

SERVICES = ("user", "sleep", "feed", "leaderboard", "analytics")
#: Each service's consumer subscriptions, as its code declares them.
SUBSCRIBERS = {
    "sleep": [SleepProjector],
    "feed": [FeedProjector],
    "leaderboard": [LeaderboardProjector],
    "analytics": [AnalyticsStats, Rollups],
}
#: What each service publishes: user's and sleep's outbox relays, analytics' TrackEvents.
PUBLISHES = {"user": USER_EVENTS, "sleep": SLEEP_EVENTS, "analytics": CLIENT_EVENTS}
#: Secrets that operators make: CloudNativePG's application user, Strimzi's cluster CA
#: (and a Secret per KafkaUser, added below), cert-manager's (from the Certificates).
OPERATOR_SECRETS = {"zentry-pg-app", "zentry-cluster-ca-cert"}
#: The Redis ACL users of the services that keep something there (sleep does not).
REDIS_USERS = {"user", "feed", "leaderboard", "analytics"}
#: PostgreSQL connections outside the services' pools and sessions (base/infra/postgres.yaml):
#: the tools run by hand, and CloudNativePG's own.
TOOLS_CONNECTIONS, CNPG_CONNECTIONS = 10, 10
README = REPO / "k8s" / "README.md"


@pytest.fixture(scope="module")
def rendered() -> dict[str, k8s.Rendered]:
    settings = config.load()
    return {path.name: k8s.build(settings, path) for path in k8s.overlays()}


def subscriptions(service: str) -> dict[str, tuple[str, ...]]:
    """{group: topics} of the service's consumers, from its code (the handlers are mocks)."""
    groups = {}
    for cls in SUBSCRIBERS.get(service, []):
        for subscription in cls.subscriptions(mock.MagicMock()):
            groups[subscription.group] = tuple(subscription.topics)
    return groups


def expected_acls(service: str) -> set[tuple[str, str, str]]:
    """(resource type, name, operation) the service's KafkaUser must have, and no more."""
    acls = set()
    if service in PUBLISHES:
        acls |= {("topic", PUBLISHES[service], op) for op in ("Write", "Describe")}
    for group, topics in subscriptions(service).items():
        acls |= {("group", group, op) for op in ("Read", "Describe", "Delete")}
        for topic in topics:
            acls |= {("topic", topic, op) for op in ("Read", "Describe")}
            acls |= {("topic", dead_letter_topic(topic), op) for op in ("Write", "Describe")}
    return acls


def acls_of(user: dict) -> set[tuple[str, str, str]]:
    found = set()
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        assert resource.get("patternType", "literal") == "literal", resource
        assert acl.get("host", "*") == "*"
        found |= {(resource["type"], resource["name"], op) for op in acl["operations"]}
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_may_write_its_topics_and_read_what_it_consumes(rendered, overlay):
    users = {u["metadata"]["name"]: u for u in objects(rendered, overlay, "KafkaUser")}
    assert set(users) == {*SERVICES, "zentry-ops"}
    topics = {t.name for t in declared()}
    for service in SERVICES:
        user = users[service]
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "zentry"
        assert acls_of(user) == expected_acls(service), service
        named = {name for kind, name, _ in acls_of(user) if kind == "topic"}
        assert named <= topics, f"{service}: a topic topics.toml does not declare"
    assert subscriptions("feed") == {"feed.graph": (USER_EVENTS,), "feed.entries": (SLEEP_EVENTS,)}
    # The people's user: dead letters and redrives, no service's groups.
    ops = acls_of(users["zentry-ops"])
    every_group = {g for s in SERVICES for g in subscriptions(s)}
    assert {("group", g, "Read") for g in every_group}.isdisjoint(ops)
    assert {("group", g + ".redrive", "Read") for g in every_group} <= ops
    assert {("topic", t.name, "Read") for t in declared()} <= ops


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_listens_only_with_tls_and_scram_and_authorizes(rendered, overlay):
    (kafka,) = objects(rendered, overlay, "Kafka")
    spec = kafka["spec"]["kafka"]
    assert spec["authorization"] == {"type": "simple"}, "superusers: only Strimzi's own"
    for listener in spec["listeners"]:
        assert listener["tls"] is True and listener["authentication"] == {"type": "scram-sha-512"}
    assert "userOperator" in kafka["spec"]["entityOperator"]
    env = config_map(rendered, overlay)
    (port,) = [lis["port"] for lis in spec["listeners"]]
    assert env["ZENTRY_KAFKA_PORT"] == str(port)
    assert env["ZENTRY_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["ZENTRY_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"


def config_map(rendered, overlay: str) -> dict[str, str]:
    (found,) = [
        o["data"]
        for o in objects(rendered, overlay, "ConfigMap")
        if o["metadata"]["name"].startswith("zentry-config")
    ]
    return found


def secret_references(rendered, overlay: str) -> set[str]:
    """Every Secret a pod of the overlay reads, by env or volume."""
    names = set()
    for o in rendered[overlay].objects:
        if o["kind"] not in ("Deployment", "StatefulSet"):
            continue
        spec = o["spec"]["template"]["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            for e in container.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
        names |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    return names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nothing_secret_is_committed_and_every_secret_has_a_maker(rendered, overlay):
    assert not objects(rendered, overlay, "Secret"), "Secrets are made, never committed"
    secretive = re.compile(r"PASSWORD|TOKEN|SECRET(?!_FILE)|_KEY$|AUTH")
    for o in rendered[overlay].objects:
        if o["kind"] not in ("Deployment", "StatefulSet"):
            continue
        spec = o["spec"]["template"]["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            for e in container.get("env", []):
                if secretive.search(e["name"]):
                    assert "secretKeyRef" in e.get("valueFrom", {}), (o["metadata"]["name"], e)
    for key in config_map(rendered, overlay):
        assert not secretive.search(key), f"{key} in a ConfigMap"
    made = OPERATOR_SECRETS | {
        u["metadata"]["name"] for u in objects(rendered, overlay, "KafkaUser")
    }
    made |= {c["spec"]["secretName"] for c in objects(rendered, overlay, "Certificate")}
    readme = README.read_text()
    created = set(re.findall(r"create secret generic ([\w$-]+)", readme))
    created = {n for n in created if "$" not in n}
    created |= {f"zentry-consul-{s}" for s in SERVICES if "zentry-consul-$s" in readme}
    created |= {f"zentry-redis-{s}" for s in REDIS_USERS if "zentry-redis-$s" in readme}
    missing = secret_references(rendered, overlay) - made - created
    assert not missing, f"Secrets no operator makes and k8s/README.md does not create: {missing}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_logs_in_as_itself(rendered, overlay):
    consul_clients = {"user", "sleep", "feed", "leaderboard", "analytics"}
    for deployment, container in service_containers(rendered, overlay):
        service = container["command"][2].split(".")[1]
        env = {e["name"]: e for e in container["env"]}
        api = env_of(container).get("ZENTRY_ROLE", "all") != "consumer"

        def secret(name: str, env: dict = env) -> dict:
            return env[name]["valueFrom"]["secretKeyRef"]

        if "ZENTRY_KAFKA_USERNAME" in env:
            assert env["ZENTRY_KAFKA_USERNAME"]["value"] == service, deployment
            assert secret("ZENTRY_KAFKA_PASSWORD") == {"name": service, "key": "password"}
        else:
            assert api and service in ("feed", "leaderboard"), f"{deployment} needs Kafka"
        if service in REDIS_USERS:
            assert env["ZENTRY_REDIS_USERNAME"]["value"] == service, deployment
            assert secret("ZENTRY_REDIS_PASSWORD") == {
                "name": f"zentry-redis-{service}",
                "key": "password",
            }
            assert secret("ZENTRY_REDIS_SENTINEL_PASSWORD")["name"] == "zentry-redis-sentinel"
        else:
            assert "ZENTRY_REDIS_PASSWORD" not in env, deployment
        if api and service in consul_clients:
            assert secret("ZENTRY_CONSUL_TOKEN") == {
                "name": f"zentry-consul-{service}",
                "key": "token",
            }
        else:
            assert "ZENTRY_CONSUL_TOKEN" not in env, f"{deployment} never registers"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_apis_serve_mutual_tls_with_the_certificate_that_names_them(rendered, overlay):
    certificates = {c["spec"]["secretName"]: c for c in objects(rendered, overlay, "Certificate")}
    issuers = {i["metadata"]["name"]: i["spec"] for i in objects(rendered, overlay, "Issuer")}
    deployments = {d["metadata"]["name"]: d for d in objects(rendered, overlay, "Deployment")}
    for deployment, container in service_containers(rendered, overlay):
        service = container["command"][2].split(".")[1]
        env = env_of(container)
        if env.get("ZENTRY_ROLE") == "consumer":
            assert "ZENTRY_TLS_CERT_FILE" not in env, "a consumer serves only health"
            continue
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {
            v["name"]: v for v in deployments[deployment]["spec"]["template"]["spec"]["volumes"]
        }
        paths = [env[f"ZENTRY_TLS_{part}_FILE"] for part in ("CERT", "KEY", "CA")]
        (folder,) = {p.rsplit("/", 1)[0] for p in paths}
        assert [p.rsplit("/", 1)[1] for p in paths] == ["tls.crt", "tls.key", "ca.crt"]
        secret_name = volumes[mounts[folder]]["secret"]["secretName"]
        certificate = certificates[secret_name]["spec"]
        assert certificate["dnsNames"][0] == service, "callers check the service's name"
        assert {"server auth", "client auth"} <= set(certificate["usages"])
        assert "ca" in issuers[certificate["issuerRef"]["name"]]
    gateway = deployments["gateway"]["spec"]["template"]["spec"]
    (envoy,) = gateway["containers"]
    mount = {m["mountPath"]: m["name"] for m in envoy["volumeMounts"]}["/etc/zentry/tls"]
    secret_name = {v["name"]: v for v in gateway["volumes"]}[mount]["secret"]["secretName"]
    assert {"server auth", "client auth"} <= set(certificates[secret_name]["spec"]["usages"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_redis_survives_a_node(rendered, overlay):
    (redis,) = objects(rendered, overlay, "StatefulSet")
    replicas = redis["spec"]["replicas"]
    spec = redis["spec"]["template"]["spec"]
    (config_container,) = spec["initContainers"]
    env = env_of(config_container)
    assert env["REPLICAS"] == str(replicas)
    sentinels = config_map(rendered, overlay)["ZENTRY_REDIS_SENTINELS"].split(",")
    service = redis["spec"]["serviceName"]
    assert sentinels == [f"redis-{i}.{service}:26379" for i in range(replicas)]
    script = config_container["args"][0]
    assert "min-replicas-to-write ${MIN_REPLICAS_TO_WRITE}" in script
    assert "aclfile /etc/redis-acl/users.acl" in script
    assert "sentinel monitor ${MASTER}" in script
    assert config_map(rendered, overlay)["ZENTRY_REDIS_SENTINEL_MASTER"] == env["MASTER"]
    (anti,) = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    if overlay == "prod":
        assert replicas == 3 and env["QUORUM"] == "2" and env["MIN_REPLICAS_TO_WRITE"] == "1"
    budgets = [
        b
        for b in objects(rendered, overlay, "PodDisruptionBudget")
        if b["metadata"]["name"] == "redis"
    ]
    assert budgets and budgets[0]["spec"]["maxUnavailable"] == 1


def connection_budget(rendered) -> dict[str, int]:
    """The sums of base/infra/postgres.yaml, from the rendered prod overlay."""
    deployments = {d["metadata"]["name"]: d for d in objects(rendered, "prod", "Deployment")}
    maxima = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]["maxReplicas"]
        for h in objects(rendered, "prod", "HorizontalPodAutoscaler")
    }
    clients = sessions = 0
    rows = {}
    for name, container in service_containers(rendered, "prod"):
        env = env_of(container)
        pool, overflow = int(env["ZENTRY_DB_POOL_SIZE"]), int(env["ZENTRY_DB_MAX_OVERFLOW"])
        assert name in deployments
        rows[name] = (maxima[name], pool, overflow, maxima[name] * (pool + overflow))
        clients += maxima[name] * (pool + overflow)
        sessions += maxima[name]  # at most one session connection per pod at a time
    (pooler,) = objects(rendered, "prod", "Pooler")
    (cluster,) = objects(rendered, "prod", "Cluster")
    parameters = pooler["spec"]["pgbouncer"]["parameters"]
    databases = 1 + len(objects(rendered, "prod", "Database"))
    instances = pooler["spec"]["instances"]
    server = int(parameters["default_pool_size"]) * databases * instances
    server += int(parameters.get("reserve_pool_size", "0")) * databases * instances
    auth = databases * instances
    pg = cluster["spec"]["postgresql"]["parameters"]
    return {
        "clients": clients,
        "max_client_conn": int(parameters["max_client_conn"]),
        "postgres": server + auth + sessions + TOOLS_CONNECTIONS + CNPG_CONNECTIONS,
        "usable": int(pg["max_connections"]) - int(pg.get("superuser_reserved_connections", "3")),
        "rows": rows,
    }


def test_postgres_connections_add_up_at_the_autoscalers_maxima(rendered):
    (pooler,) = objects(rendered, "prod", "Pooler")
    assert pooler["spec"]["pgbouncer"]["poolMode"] == "transaction"
    assert pooler["spec"]["type"] == "rw"
    env = config_map(rendered, "prod")
    assert env["ZENTRY_POSTGRES_HOST"] == pooler["metadata"]["name"]
    assert env["ZENTRY_POSTGRES_POOLER"] == "transaction"
    (cluster,) = objects(rendered, "prod", "Cluster")
    assert env["ZENTRY_POSTGRES_SESSION_HOST"] == cluster["metadata"]["name"] + "-rw"
    budget = connection_budget(rendered)
    assert budget["clients"] <= budget["max_client_conn"], budget
    assert budget["postgres"] <= budget["usable"], budget


def test_the_written_arithmetic_matches_the_manifests(rendered):
    """The table in k8s/README.md and the sums in postgres.yaml say what the manifests do."""
    budget = connection_budget(rendered)
    table = {}
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].strip("`") in budget["rows"]:
            table[cells[0].strip("`")] = tuple(int(c) for c in cells[1:])
    assert table == budget["rows"], "k8s/README.md's pool table"
    written = (REPO / "k8s" / "base" / "infra" / "postgres.yaml").read_text()
    assert f"= {budget['clients']}" in written
    assert f"= {budget['postgres']}" in written
    assert f"max_client_conn {budget['max_client_conn']}" in written


def test_validation_rejects_misspelt_fields_of_the_new_kinds(rendered):
    """The operators' CRD schemas are applied as strictly as the core schema."""
    broken = copy.deepcopy(rendered["prod"].objects)
    for obj in broken:
        if obj["kind"] == "KafkaUser":
            obj["spec"]["authorization"]["acls"][0]["operatons"] = ["Write"]
        if obj["kind"] == "Pooler":
            obj["spec"]["pgbouncer"]["poolmode"] = "transaction"
        if obj["kind"] == "Certificate":
            obj["spec"]["dnsName"] = ["x"]
        if obj["kind"] == "NetworkPolicy":
            obj["spec"]["podSelectors"] = {}
    found = k8s.problems(k8s.Rendered("prod", broken))
    users = len(objects(rendered, "prod", "KafkaUser"))
    certificates = len(objects(rendered, "prod", "Certificate"))
    assert sum("'operatons' was unexpected" in line for line in found) == users
    assert sum("'poolmode' was unexpected" in line for line in found) == 1
    assert sum("'dnsName' was unexpected" in line for line in found) == certificates
    assert sum("NetworkPolicy/" in line for line in found) == len(
        objects(rendered, "prod", "NetworkPolicy")
    )
