"""The NetworkPolicies of the prod overlay, evaluated as Kubernetes does, against the flows
Zentry's architecture has (k8s/base/security/network-policies.yaml).

A flow (sender, receiver, port) is allowed when the sender may send it, and the receiver
may receive it. A pod that no policy of a kind (Ingress, Egress) selects is unrestricted
in that direction; a selected one may do only what some selecting policy's rule allows: a
rule matches a peer by podSelector (in the policy's namespace), namespaceSelector (and
podSelector within those namespaces) or ipBlock, and a port by number and protocol (TCP
unless said); a rule without peers matches every peer, one without ports every port.
Policies only exist in the namespace zentry here, so pods elsewhere are free to send, and
to receive. The brokers' ingress is the policy Strimzi writes from the Kafka resource
(`strimzi_policy`), so the listener's networkPolicyPeers are evaluated too.

The pods: those the overlay declares (their pod templates' labels and container ports),
those the operators make from its resources (PostgreSQL's instances and PgBouncer from the
Cluster and Pooler, Kafka's nodes and entity operator from the Kafka resource, with the
labels those operators give them), and the peers outside the namespace that k8s/README.md
installs. An ipBlock is taken to match pods too, as Calico does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pytest

from infra import config, k8s
from tests.unit.test_k8s_manifests import selects

NAMESPACE = "zentry"
SERVICES = ("user", "sleep", "feed", "leaderboard", "analytics")
CONSUMERS = ("sleep-consumer", "feed-consumer", "leaderboard-consumer", "analytics-consumer")
#: The services that keep something in Redis (sleep does not).
REDIS_USERS = ("user", "feed", "feed-consumer", "leaderboard", "leaderboard-consumer")
REDIS_USERS += ("analytics", "analytics-consumer")
#: The pods that talk to Kafka: the API pods that publish, and every consumer.
KAFKA_CLIENTS = ("user", "sleep", "analytics", *CONSUMERS)
#: Who calls whom inside the mesh (the Balancer(...) of services/*/app.py).
CALLS = {("user", "sleep"), ("sleep", "user"), ("leaderboard", "user"), ("analytics", "user")}


@dataclass(frozen=True)
class Endpoint:
    name: str
    namespace: str | None  # None: an address outside the cluster's pods
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    ports: tuple[str, ...] = ()  # "8080" (TCP) or "53/UDP"
    ip: str = "10.244.0.1"


OUTSIDE = [
    Endpoint("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, ("53/UDP", "53"), "10.244.9.2"),
    Endpoint("consul-agent", "consul", {"app": "consul", "component": "client"}, ("8500",)),
    Endpoint("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}, ("9090",)),
    Endpoint("cnpg-operator", "cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"}),
    Endpoint(
        "strimzi-operator",
        "strimzi",
        {"name": "strimzi-cluster-operator", "strimzi.io/kind": "cluster-operator"},
    ),
    Endpoint("kube-apiserver", None, {}, ("443", "6443"), "172.18.0.2"),
    Endpoint("internet", None, {}, ("443",), "203.0.113.7"),
]


def _port(spec: dict) -> str:
    protocol = spec.get("protocol", "TCP")
    return str(spec["port"]) + ("" if protocol == "TCP" else f"/{protocol}")


def endpoints(objects: list[dict]) -> list[Endpoint]:
    """The overlay's pods, the operators' pods made from its resources, and OUTSIDE."""
    found = []
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet"):
            template = o["spec"]["template"]
            ports = tuple(
                str(p["containerPort"])
                for c in template["spec"]["containers"]
                for p in c.get("ports", [])
            )
            found.append(
                Endpoint(o["metadata"]["name"], NAMESPACE, template["metadata"]["labels"], ports)
            )
        elif o["kind"] == "Cluster":
            labels = {"cnpg.io/cluster": o["metadata"]["name"], "cnpg.io/podRole": "instance"}
            found.append(Endpoint("postgres", NAMESPACE, labels, ("5432", "8000", "9187")))
        elif o["kind"] == "Pooler":
            labels = {
                "cnpg.io/cluster": o["spec"]["cluster"]["name"],
                "cnpg.io/poolerName": o["metadata"]["name"],
                "cnpg.io/podRole": "pooler",
                **o["spec"].get("template", {}).get("metadata", {}).get("labels", {}),
            }
            found.append(Endpoint("pooler", NAMESPACE, labels, ("5432", "9127")))
        elif o["kind"] == "Kafka":
            name = o["metadata"]["name"]
            common = {"strimzi.io/cluster": name, "strimzi.io/kind": "Kafka"}
            listeners = tuple(str(lis["port"]) for lis in o["spec"]["kafka"]["listeners"])
            found.append(
                Endpoint(
                    "kafka",
                    NAMESPACE,
                    {
                        **common,
                        "strimzi.io/name": f"{name}-kafka",
                        "strimzi.io/broker-role": "true",
                    },
                    ("9090", "9091", *listeners),
                )
            )
            found.append(
                Endpoint(
                    "entity-operator",
                    NAMESPACE,
                    {**common, "strimzi.io/name": f"{name}-entity-operator"},
                )
            )
    # Distinct pod addresses, so an ipBlock meets real ones.
    found = [
        Endpoint(e.name, e.namespace, e.labels, e.ports, f"10.244.1.{i + 1}")
        for i, e in enumerate(found)
    ]
    return found + OUTSIDE


def strimzi_policy(kafka: dict) -> dict:
    """The NetworkPolicy Strimzi writes for the Kafka nodes: the KRaft quorum (9090) from
    the nodes and the cluster operator, replication (9091) from the nodes, the entity
    operator and the cluster operator, each listener from its networkPolicyPeers (or from
    everyone without them)."""
    name = kafka["metadata"]["name"]
    nodes = {"podSelector": {"matchLabels": {"strimzi.io/name": f"{name}-kafka"}}}
    operator = {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {"strimzi.io/kind": "cluster-operator"}},
    }
    entity = {"podSelector": {"matchLabels": {"strimzi.io/name": f"{name}-entity-operator"}}}
    ingress = [
        {"from": [nodes, operator], "ports": [{"port": 9090}]},
        {"from": [nodes, entity, operator], "ports": [{"port": 9091}]},
    ]
    for listener in kafka["spec"]["kafka"]["listeners"]:
        rule = {"ports": [{"port": listener["port"]}]}
        if listener.get("networkPolicyPeers"):
            rule["from"] = listener["networkPolicyPeers"]
        ingress.append(rule)
    return {
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{name}-network-policy-kafka", "namespace": NAMESPACE},
        "spec": {
            "podSelector": {
                "matchLabels": {"strimzi.io/cluster": name, "strimzi.io/name": f"{name}-kafka"}
            },
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def policies(objects: list[dict]) -> list[dict]:
    found = [o for o in objects if o["kind"] == "NetworkPolicy"]
    found += [strimzi_policy(o) for o in objects if o["kind"] == "Kafka"]
    for policy in found:
        assert policy["metadata"].get("namespace") == NAMESPACE, policy["metadata"]["name"]
    return found


def peer_matches(peer: dict, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(c) for c in block.get("except", [])
        )
    if other.namespace is None:
        return False  # pod and namespace selectors select pods only
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": other.namespace}
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif other.namespace != NAMESPACE:
        return False
    return selects(peer.get("podSelector", {}), other.labels)


def rule_matches(rule: dict, peers_key: str, other: Endpoint, port: str) -> bool:
    peers = rule.get(peers_key)
    if peers is not None and not any(peer_matches(p, other) for p in peers):
        return False
    ports = rule.get("ports")
    return ports is None or port in {_port(p) for p in ports}


def allowed(policy_set: list[dict], direction: str, pod: Endpoint, other: Endpoint, port: str):
    """Whether `pod` may send to (Egress) or receive from (Ingress) `other` on `port`."""
    if pod.namespace != NAMESPACE:
        return True
    selecting = [
        p
        for p in policy_set
        if direction in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], pod.labels)
    ]
    if not selecting:
        return True
    key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    return any(
        rule_matches(rule, peers_key, other, port)
        for p in selecting
        for rule in p["spec"].get(key, [])
    )


def allowed_flows(objects: list[dict]) -> set[tuple[str, str, str]]:
    """Every (sender, receiver, port) the policies allow where one end is in the namespace."""
    pods, policy_set = endpoints(objects), policies(objects)
    return {
        (source.name, target.name, port)
        for source in pods
        for target in pods
        if NAMESPACE in (source.namespace, target.namespace)
        for port in target.ports
        if allowed(policy_set, "Egress", source, target, port)
        and allowed(policy_set, "Ingress", target, source, port)
    }


def expected_flows(names: set[str]) -> set[tuple[str, str, str]]:
    """The flows the architecture has, and nothing else."""
    inside = {n for n in names if n not in {e.name for e in OUTSIDE}}
    apis, service_pods = set(SERVICES), {*SERVICES, *CONSUMERS}
    flows = set()
    # Every pod of the namespace resolves names.
    flows |= {(pod, "kube-dns", port) for pod in inside for port in ("53", "53/UDP")}
    # The public edge: anyone outside the namespace reaches Envoy's listener (the load
    # balancer keeps the clients' addresses); Prometheus scrapes its metrics listener.
    flows |= {(e.name, "gateway", "8080") for e in OUTSIDE}
    flows.add(("prometheus", "gateway", "9465"))
    # Envoy -> every API; Envoy's endpoint feed -> its node's Consul agent.
    flows |= {("gateway", api, "50051") for api in apis}
    flows.add(("gateway", "consul-agent", "8500"))
    # The services' own calls, their Consul agent (the API pods only), their metrics.
    flows |= {(caller, callee, "50051") for caller, callee in CALLS}
    flows |= {(api, "consul-agent", "8500") for api in apis}
    flows |= {("prometheus", pod, "9464") for pod in service_pods}
    # PostgreSQL: PgBouncer, and the instances for the session work.
    flows |= {(pod, db, "5432") for pod in service_pods for db in ("pooler", "postgres")}
    # Redis and its Sentinels.
    flows |= {(pod, "redis", port) for pod in REDIS_USERS for port in ("6379", "26379")}
    # Kafka's TLS + SCRAM listener.
    flows |= {(pod, "kafka", "9093") for pod in KAFKA_CLIENTS}
    # The infrastructure among itself and its operators.
    flows |= {("pooler", "postgres", "5432"), ("postgres", "postgres", "5432")}
    flows.add(("cnpg-operator", "postgres", "8000"))
    flows |= {("redis", "redis", port) for port in ("6379", "26379")}
    flows |= {("kafka", "kafka", port) for port in ("9090", "9091")}
    flows |= {("strimzi-operator", "kafka", port) for port in ("9090", "9091")}
    flows.add(("entity-operator", "kafka", "9091"))
    # The operators' pods here call the Kubernetes API; allowed by address to 443 and 6443
    # anywhere (the README says to narrow it to the control plane's), so "the internet" on
    # 443 too.
    for pod in ("postgres", "pooler", "entity-operator"):
        flows |= {(pod, "kube-apiserver", "443"), (pod, "kube-apiserver", "6443")}
        flows.add((pod, "internet", "443"))
    return flows


@pytest.fixture(scope="module")
def prod() -> list[dict]:
    overlay = next(p for p in k8s.overlays() if p.name == "prod")
    return k8s.build(config.load(), overlay).objects


def test_the_allowed_flows_are_exactly_the_architectures(prod):
    names = {e.name for e in endpoints(prod)}
    assert {*SERVICES, *CONSUMERS, "gateway", "redis", "postgres", "pooler", "kafka"} <= names
    flows, expected = allowed_flows(prod), expected_flows(names)
    assert sorted(expected - flows) == [], "flows the architecture needs, denied"
    assert sorted(flows - expected) == [], "flows allowed that the architecture does not have"


def test_examples_of_what_is_denied(prod):
    flows = allowed_flows(prod)
    assert ("feed", "user", "50051") not in flows, "feed calls no service"
    assert ("gateway", "feed-consumer", "50051") not in flows, "consumers serve only probes"
    assert ("gateway", "kafka", "9093") not in flows
    assert ("feed", "kafka", "9093") not in flows, "the feed's API touches no topic"
    assert ("sleep", "redis", "6379") not in flows, "sleep keeps nothing in Redis"
    assert ("internet", "user", "50051") not in flows
    assert ("feed-consumer", "consul-agent", "8500") not in flows, "consumers never register"
    assert ("sleep", "internet", "443") not in flows


def test_everything_is_denied_by_default(prod):
    (deny,) = [
        o for o in prod if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "default-deny"
    ]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_the_evaluation_sees_a_widened_policy(prod):
    """The matrix test would catch a policy that lets too much through."""
    widened = [dict(o) for o in prod]
    for i, o in enumerate(widened):
        if o["kind"] == "Kafka":
            kafka = {**o, "spec": {**o["spec"], "kafka": dict(o["spec"]["kafka"])}}
            kafka["spec"]["kafka"]["listeners"] = [
                {k: v for k, v in lis.items() if k != "networkPolicyPeers"}
                for lis in o["spec"]["kafka"]["listeners"]
            ]
            widened[i] = kafka
    flows = allowed_flows(widened)
    assert ("prometheus", "kafka", "9093") in flows, "without peers, the listener is open"
    assert ("gateway", "kafka", "9093") not in flows, "the gateway's egress still holds"
