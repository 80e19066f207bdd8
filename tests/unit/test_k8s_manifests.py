"""The project's rules over the rendered Kubernetes manifests (k8s/, rendered by kustomize).

`make k8s-validate` checks the objects against the Kubernetes schema; these
check what the schema cannot: that every service is deployed, safely, with
gRPC probes, that it is scraped and its alerts lead to k8s/RUNBOOK.md, and
that the infrastructure matches what `infra up` declares.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import grpc
import pytest
from prometheus_client.metrics import MetricWrapperBase

from gateway import descriptors
from gateway.config import DESCRIPTOR_SET
from infra import config, k8s, mesh
from infra.topics import declared
from services.kit import metrics
from tests.unit.test_dockerfile import instructions

REPO = config.REPO_DIR
OVERLAYS = [path.name for path in k8s.overlays()]
RUNBOOK = REPO / "k8s" / "RUNBOOK.md"
RUNBOOK_URL = "https://github.com/zentry/zentry/blob/main/k8s/RUNBOOK.md"


def exported() -> dict[str, set[str]]:
    """What the services export (services.kit.metrics), name → labels; a histogram by its
    base name (its _bucket, _sum and _count series have `le` besides)."""
    found = {
        metric._name + ("_total" if metric._type == "counter" else ""): set(metric._labelnames)
        for metric in vars(metrics).values()
        if isinstance(metric, MetricWrapperBase)
    }
    return found | {name: set(labels) for name, (_, labels) in metrics.POOLS.FAMILIES.items()}


SERVICE_METRICS = exported()
HISTOGRAMS = {metrics.RPC_SECONDS._name}
#: The labels Prometheus gives every scraped series (the PodMonitors add `component`).
TARGET_LABELS = {"namespace", "pod", "container", "job", "instance", "endpoint", "component"}
#: The codes that are the server's fault, which the error objective counts.
SERVER_FAULTS = {
    "UNKNOWN",
    "DEADLINE_EXCEEDED",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, k8s.Rendered]:
    settings = config.load()
    return {path.name: k8s.build(settings, path) for path in k8s.overlays()}


def objects(rendered, overlay: str, kind: str) -> list[dict]:
    return [o for o in rendered[overlay].objects if o["kind"] == kind]


def pod_specs(rendered, overlay: str) -> dict[str, dict]:
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in rendered[overlay].objects
        if o["kind"] in ("Deployment", "StatefulSet")
    }


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def service_containers(rendered, overlay: str):
    """(deployment name, container) for every container that runs `python -m services.<x>`."""
    for name, spec in pod_specs(rendered, overlay).items():
        for container in spec["containers"]:
            command = container.get("command", [])
            if command[:2] == ["python", "-m"] and command[2].startswith("services."):
                yield name, container


def services_in_repo() -> set[str]:
    return {p.parent.name for p in (REPO / "services").glob("*/__main__.py")} - {"kit"}


def config_env() -> dict[str, str]:
    lines = (REPO / "k8s" / "base" / "config.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions) selects these labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for rule in selector.get("matchExpressions", []):
        key, operator, values = rule["key"], rule["operator"], rule.get("values", [])
        holds = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not holds:
            return False
    return True


def scrapes(rendered, overlay: str, deployment: dict, container: dict) -> list[dict]:
    """The PodMonitor endpoints that scrape this container of the Deployment's pods."""
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"] for p in container.get("ports", [])}
    return [
        endpoint
        for monitor in objects(rendered, overlay, "PodMonitor")
        if monitor["metadata"]["namespace"] == deployment["metadata"]["namespace"]
        and selects(monitor["spec"]["selector"], labels)
        for endpoint in monitor["spec"]["podMetricsEndpoints"]
        if endpoint["port"] in ports
    ]


def rules(rendered, overlay: str) -> list[dict]:
    return [
        rule
        for o in objects(rendered, overlay, "PrometheusRule")
        for group in o["spec"]["groups"]
        for rule in group["rules"]
    ]


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_sections() -> dict[str, str]:
    """Each `## ` section of k8s/RUNBOOK.md by its heading."""
    sections: dict[str, str] = {}
    heading = None
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            sections[heading] = ""
        elif heading is not None:
            sections[heading] += line + "\n"
    return sections


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid(rendered, overlay):
    assert k8s.problems(rendered[overlay]) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_a_deployment(rendered, overlay):
    deployed = {c["command"][2].split(".")[1] for _, c in service_containers(rendered, overlay)}
    assert deployed == services_in_repo(), "a service directory without manifests, or the reverse"
    assert set(mesh.SERVICES) == services_in_repo(), "make dev runs every service too"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_consumers_scale_apart_from_the_api(rendered, overlay):
    roles: dict[str, set[str]] = {}
    for _, container in service_containers(rendered, overlay):
        service = container["command"][2].split(".")[1]
        roles.setdefault(service, set()).add(env_of(container).get("ZENTRY_ROLE", "all"))
    for service in services_in_repo():
        app = (REPO / "services" / service / "app.py").read_text()
        expected = {"api", "consumer"} if "consumers=" in app else {"all"}
        assert roles[service] == expected, service


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_containers_have_grpc_probes_on_their_port(rendered, overlay):
    """kubelet's gRPC probes speak no TLS: a container serving mutual TLS (ZENTRY_TLS_*) is
    probed by the image's health check over TLS, with its own certificate."""
    port = int(config_env()["ZENTRY_PORT"])
    for name, container in service_containers(rendered, overlay):
        assert {"name": "grpc", "containerPort": port} in container["ports"], name
        tls = "ZENTRY_TLS_CERT_FILE" in env_of(container)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if tls:
                assert container[probe]["exec"] == {
                    "command": ["python", "-m", "services.kit.healthcheck"]
                }, f"{name} {probe}"
            else:
                assert container[probe]["grpc"] == {"port": port}, f"{name} {probe}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_locked_down_and_bounded(rendered, overlay):
    for name, spec in pod_specs(rendered, overlay).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            where = f"{name}/{container['name']}"
            limits, requests = container["resources"]["limits"], container["resources"]["requests"]
            assert {"cpu", "memory"} <= set(limits) and {"cpu", "memory"} <= set(requests), where
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            image = container["image"]
            tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
            assert (tag and tag != "latest") or "@sha256:" in image, f"{where}: unpinned {image}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_outlive_their_drain_when_terminated(rendered, overlay):
    env = config_env()
    needed = float(env["ZENTRY_DRAIN_DELAY"]) + float(env["ZENTRY_SHUTDOWN_GRACE"])
    specs = pod_specs(rendered, overlay)
    for name in {name for name, _ in service_containers(rendered, overlay)}:
        assert specs[name]["terminationGracePeriodSeconds"] > needed, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_a_disruption_budget(rendered, overlay):
    budgets = [
        o["spec"]["selector"]["matchLabels"]
        for o in objects(rendered, overlay, "PodDisruptionBudget")
    ]
    for deployment in objects(rendered, overlay, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert any(b.items() <= labels.items() for b in budgets), deployment["metadata"]["name"]


def test_prod_autoscales_every_deployment_and_exposes_the_gateway(rendered):
    scaled = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in objects(rendered, "prod", "HorizontalPodAutoscaler")
    }
    deployments = objects(rendered, "prod", "Deployment")
    assert scaled == {d["metadata"]["name"] for d in deployments}
    assert all("replicas" not in d["spec"] for d in deployments), "the autoscalers own the counts"
    consumer = next(
        h
        for h in objects(rendered, "prod", "HorizontalPodAutoscaler")
        if h["metadata"]["name"] == "sleep-consumer"
    )
    partitions = {t.name: t.partitions for t in declared()}["zentry.user.events"]
    assert consumer["spec"]["maxReplicas"] <= partitions, "more consumers than partitions idle"
    gateway = next(
        s for s in objects(rendered, "prod", "Service") if s["metadata"]["name"] == "gateway"
    )
    assert gateway["spec"]["type"] == "LoadBalancer"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topics_match_the_local_declaration(rendered, overlay):
    strimzi = {
        t["spec"]["topicName"]: (t["spec"]["partitions"], t["spec"]["config"]["retention.ms"])
        for t in objects(rendered, overlay, "KafkaTopic")
    }
    local = {t.name: (t.partitions, t.retention_ms) for t in declared()}
    assert strimzi == local


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_database_exists(rendered, overlay):
    (cluster,) = objects(rendered, overlay, "Cluster")
    names = {cluster["spec"]["bootstrap"]["initdb"]["database"]}
    names |= {d["spec"]["name"] for d in objects(rendered, overlay, "Database")}
    assert names == set(config.load().postgres.databases)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_config_is_generated_for_the_pod(rendered, overlay):
    (envoy_config,) = [
        o
        for o in objects(rendered, overlay, "ConfigMap")
        if o["metadata"]["name"].startswith("gateway-envoy-")
    ]
    gateway = pod_specs(rendered, overlay)["gateway"]
    volumes = {v["name"]: v for v in gateway["volumes"]}
    assert volumes["config"]["configMap"]["name"] == envoy_config["metadata"]["name"]
    (envoy,) = gateway["containers"]
    mounts = {m["name"]: m["mountPath"] for m in envoy["volumeMounts"]}
    bootstrap = json.loads(envoy_config["data"]["bootstrap.json"])
    assert envoy["args"][:2] == ["--config-path", f"{mounts['config']}/bootstrap.json"]
    lds = bootstrap["dynamic_resources"]["lds_config"]["path_config_source"]["path"]
    assert Path(lds).parent == Path(mounts["config"])
    clusters = json.loads(envoy_config["data"]["cds.json"])["resources"]
    eds = [
        c["eds_cluster_config"]["eds_config"]["path_config_source"]["path"]
        for c in clusters
        if c["type"] == "EDS"
    ]
    assert eds and all(Path(p).parent == Path(mounts["endpoints"]) for p in eds)
    upstreams = {s.upstream for s in descriptors.api_services(descriptors.load(DESCRIPTOR_SET))}
    assert {Path(p).stem for p in eds} == upstreams, "every API package is routed"
    listener = json.loads(envoy_config["data"]["lds.json"])["resources"][0]
    assert listener["address"]["socket_address"]["address"] == "0.0.0.0"
    port = listener["address"]["socket_address"]["port_value"]
    assert envoy["ports"][0] == {"name": "http", "containerPort": port}
    assert [p["name"] for p in envoy["ports"]] == ["http", "envoy-metrics"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_envoy_speaks_mutual_tls_to_every_service_with_a_mounted_certificate(rendered, overlay):
    """The generated clusters present Envoy's certificate and check each service's name; the
    SDS files are in the ConfigMap, and the PEM files they name in a volume of the pod."""
    (envoy_config,) = [
        o
        for o in objects(rendered, overlay, "ConfigMap")
        if o["metadata"]["name"].startswith("gateway-envoy-")
    ]
    upstreams = {s.upstream for s in descriptors.api_services(descriptors.load(DESCRIPTOR_SET))}
    clusters = json.loads(envoy_config["data"]["cds.json"])["resources"]
    for cluster in (c for c in clusters if c["name"] in upstreams):
        context = cluster["transport_socket"]["typed_config"]
        assert context["sni"] == cluster["name"]
        sans = context["common_tls_context"]["combined_validation_context"][
            "default_validation_context"
        ]["match_typed_subject_alt_names"]
        assert sans == [{"san_type": "DNS", "matcher": {"exact": cluster["name"]}}]
    (envoy,) = pod_specs(rendered, overlay)["gateway"]["containers"]
    mounts = {Path(m["mountPath"]) for m in envoy["volumeMounts"]}
    for name in ("gateway-tls-certificate.json", "gateway-tls-ca.json"):
        (secret,) = json.loads(envoy_config["data"][name])["resources"]
        pem = [v["filename"] for v in secret.get("tls_certificate", {}).values() if "filename" in v]
        pem += [secret.get("validation_context", {}).get("trusted_ca", {}).get("filename")]
        for path in filter(None, pem):
            assert Path(path).parent in mounts, f"{path} is in no volume of the gateway pod"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_has_the_files_envoy_serves_at_docs(rendered, overlay):
    """Swagger UI is too big for the ConfigMap: an init container copies it from the image."""
    (envoy_config,) = [
        o
        for o in objects(rendered, overlay, "ConfigMap")
        if o["metadata"]["name"].startswith("gateway-envoy-")
    ]
    listener = json.loads(envoy_config["data"]["lds.json"])["resources"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    bodies = [
        r["direct_response"]["body"]
        for r in manager["route_config"]["virtual_hosts"][0]["routes"]
        if "direct_response" in r
    ]
    files = [Path(body["filename"]) for body in bodies if "filename" in body]
    assert files, "Envoy reads Swagger UI's files"
    (folder,) = {f.parent for f in files}
    gateway = pod_specs(rendered, overlay)["gateway"]
    (envoy,) = gateway["containers"]
    volume = {m["mountPath"]: m["name"] for m in envoy["volumeMounts"]}[str(folder)]
    assert "emptyDir" in {v["name"]: v for v in gateway["volumes"]}[volume]
    (filler,) = [
        c
        for c in gateway["initContainers"]
        if any(m["name"] == volume for m in c.get("volumeMounts", []))
    ]
    source = filler["command"][-2].removesuffix("/.")
    assert filler["command"] == ["cp", "-R", f"{source}/.", str(folder)]
    copied = [
        rest.split()
        for word, rest in instructions()
        if word == "COPY" and rest.startswith("--from=docs-ui")
    ]
    assert sorted(Path(part).name for part in copied[0][1:-1]) == sorted(f.name for f in files)
    assert copied[0][-1].rstrip("/") == source, "the image keeps them where the pod copies from"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_container_serves_metrics_to_a_monitor(rendered, overlay):
    port = int(config_env()["ZENTRY_METRICS_PORT"])
    deployments = {d["metadata"]["name"]: d for d in objects(rendered, overlay, "Deployment")}
    for name, container in service_containers(rendered, overlay):
        assert container["ports"] == [
            {"name": "grpc", "containerPort": int(config_env()["ZENTRY_PORT"])},
            {"name": "metrics", "containerPort": port},
        ], name
        endpoints = scrapes(rendered, overlay, deployments[name], container)
        assert [(e["port"], e["path"]) for e in endpoints] == [("metrics", "/metrics")], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_envoy_is_scraped_but_its_admin_stays_in_the_pod(rendered, overlay):
    (gateway,) = [
        d for d in objects(rendered, overlay, "Deployment") if d["metadata"]["name"] == "gateway"
    ]
    (envoy,) = gateway["spec"]["template"]["spec"]["containers"]
    endpoints = scrapes(rendered, overlay, gateway, envoy)
    assert [(e["port"], e["path"]) for e in endpoints] == [("envoy-metrics", "/stats/prometheus")]
    (envoy_config,) = [
        o
        for o in objects(rendered, overlay, "ConfigMap")
        if o["metadata"]["name"].startswith("gateway-envoy-")
    ]
    admin = json.loads(envoy_config["data"]["bootstrap.json"])["admin"]["address"]
    assert admin["socket_address"]["address"] == "127.0.0.1", "the admin can drain and quit Envoy"
    ports = {p["containerPort"] for p in envoy["ports"]}
    assert admin["socket_address"]["port_value"] not in ports


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_envoy_metrics_listener_serves_only_its_stats(rendered, overlay):
    """A listener on the `envoy-metrics` port forwards only /stats/prometheus, to the admin."""
    (envoy,) = pod_specs(rendered, overlay)["gateway"]["containers"]
    port = {p["name"]: p["containerPort"] for p in envoy["ports"]}["envoy-metrics"]
    (envoy_config,) = [
        o
        for o in objects(rendered, overlay, "ConfigMap")
        if o["metadata"]["name"].startswith("gateway-envoy-")
    ]
    bootstrap = json.loads(envoy_config["data"]["bootstrap.json"])
    listeners = json.loads(envoy_config["data"]["lds.json"])["resources"]
    listeners += bootstrap.get("static_resources", {}).get("listeners", [])
    (listener,) = [
        lis for lis in listeners if lis["address"]["socket_address"]["port_value"] == port
    ]
    assert listener["address"]["socket_address"]["address"] == "0.0.0.0"
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    routes = [r for host in manager["route_config"]["virtual_hosts"] for r in host["routes"]]
    forwarded = [r for r in routes if "route" in r]
    assert [r["match"].get("path") for r in forwarded] == ["/stats/prometheus"], "exactly"
    clusters = json.loads(envoy_config["data"]["cds.json"])["resources"]
    clusters += bootstrap.get("static_resources", {}).get("clusters", [])
    (target,) = [c for c in clusters if c["name"] == forwarded[0]["route"]["cluster"]]
    (endpoint,) = [
        e["endpoint"]["address"]["socket_address"]
        for group in target["load_assignment"]["endpoints"]
        for e in group["lb_endpoints"]
    ]
    assert endpoint == bootstrap["admin"]["address"]["socket_address"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_alert_leads_to_its_runbook_section(rendered, overlay):
    sections = runbook_sections()
    alerts = [r for r in rules(rendered, overlay) if "alert" in r]
    assert alerts
    for rule in alerts:
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert rule["annotations"]["runbook_url"] == f"{RUNBOOK_URL}#{github_anchor(name)}"
        assert name in sections, f"k8s/RUNBOOK.md has no `## {name}`"
        parts = re.split(r"^### (.+)$", sections[name], flags=re.MULTILINE)
        headings = [h.strip() for h in parts[1::2]]
        assert headings == ["What it means", "How to confirm", "What to do"], name
        assert all(body.strip() for body in parts[2::2]), f"{name}: an empty subsection"
    alert_names = {r["alert"] for r in alerts}
    stale = {h for h, body in sections.items() if "### What it means" in body} - alert_names
    assert not stale, f"runbook sections of no alert: {stale}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rules_name_only_metrics_the_services_export(rendered, overlay):
    """Every zentry_/grpc_ name in an expression is an exported series or one of its labels,
    every label a selector names is the metric's, and every recorded name is recorded."""
    all_rules = rules(rendered, overlay)
    recorded = {r["record"] for r in all_rules if "record" in r}
    series = {
        name + suffix
        for name in SERVICE_METRICS
        for suffix in (("_bucket", "_sum", "_count") if name in HISTOGRAMS else ("",))
    }
    labels = set().union(*SERVICE_METRICS.values())
    for rule in all_rules:
        where = rule.get("alert") or rule.get("record")
        expr = re.sub(r'"[^"]*"', '""', rule["expr"])  # no names inside label values
        for name in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
            if ":" in name:
                assert name in recorded, f"{where}: {name} is recorded by no rule"
            elif name.startswith(("zentry_", "grpc_")):
                assert name in series | labels, f"{where}: {name} is not exported"
        for name, matchers in re.findall(r"(\b[a-z_]+)\{([^}]*)\}", rule["expr"]):
            metric = next(
                (
                    m
                    for m in SERVICE_METRICS
                    if name in (m, *(m + s for s in ("_bucket", "_count", "_sum")))
                ),
                None,
            )
            if metric is None:
                continue
            allowed = (
                SERVICE_METRICS[metric]
                | TARGET_LABELS
                | ({"le"} if metric in HISTOGRAMS else set())
            )
            used = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", re.sub(r'"[^"]*"', '""', matchers)))
            assert used <= allowed, f"{where}: {name} has no label {used - allowed}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_error_objective_counts_the_server_faults(rendered, overlay):
    codes = {code.name for code in grpc.StatusCode}
    for rule in rules(rendered, overlay):
        for pattern in re.findall(r'grpc_code=~"([^"]*)"', rule["expr"]):
            assert set(pattern.split("|")) == SERVER_FAULTS <= codes, rule.get("record")


def test_validation_rejects_a_misspelt_monitor_or_rule_field(rendered):
    """The CRD schemas are checked as strictly as the core objects."""
    broken = copy.deepcopy(rendered["dev"].objects)
    for obj in broken:
        if obj["kind"] == "PodMonitor":
            obj["spec"]["podMetricsEndpoints"][0]["intervall"] = "30s"
        if obj["kind"] == "PrometheusRule":
            obj["spec"]["groups"][0]["rules"][0]["expresion"] = "up"
    found = k8s.problems(k8s.Rendered("dev", broken))
    assert sum("'intervall' was unexpected" in line for line in found) == 2
    assert sum("'expresion' was unexpected" in line for line in found) == 1
