"""The project's rules over the rendered Kubernetes manifests (k8s/, rendered by kustomize).

`make k8s-validate` checks the objects against the Kubernetes schema; these
check what the schema cannot: that every service is deployed, safely, with
gRPC probes, and that the infrastructure matches what `infra up` declares.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway import descriptors
from gateway.config import DESCRIPTOR_SET
from infra import config, k8s, mesh
from infra.topics import declared
from tests.unit.test_dockerfile import instructions

REPO = config.REPO_DIR
OVERLAYS = [path.name for path in k8s.overlays()]


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
    port = int(config_env()["ZENTRY_PORT"])
    for name, container in service_containers(rendered, overlay):
        assert container["ports"] == [{"name": "grpc", "containerPort": port}], name
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
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
    assert envoy["ports"] == [{"name": "http", "containerPort": port}]


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
