"""The Kubernetes manifests in k8s/: render every overlay and check it offline.

For each overlay (k8s/overlays/<name>):

1. render the gateway's Envoy config into `<overlay>/generated/` with the same
   generator as `make dev` (gateway.render), from the overlay's `gateway.env`
   and the in-pod paths of the base's `gateway-paths` ConfigMap;
2. `kustomize build` it;
3. validate every core Kubernetes object against the Kubernetes OpenAPI schema
   (kubernetes-validate, offline, strict: unknown fields are errors), and
   check that every other object is one of the operator resources we declare.

`python -m infra k8s` runs this for every overlay (what `make k8s-validate` does).
The project's own rules over the rendered objects are tests:
tests/unit/test_k8s_manifests.py.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import kubernetes_validate
import yaml

from gateway.config import GatewaySettings
from gateway.render import render
from infra import config
from infra.config import Settings
from infra.errors import InfraError
from services.kit.settings import ConfigError, Env

K8S = config.REPO_DIR / "k8s"
#: The oldest Kubernetes the manifests are written for (native sidecars, gRPC probes).
KUBERNETES_VERSION = "1.33"
CORE_API_VERSIONS = {"v1", "apps/v1", "policy/v1", "autoscaling/v2", "batch/v1"}
#: Resources of the operators k8s/README.md installs, validated by those operators.
OPERATOR_KINDS = {
    ("kafka.strimzi.io/v1beta2", "Kafka"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "Database"),
}


@dataclass(frozen=True)
class Rendered:
    overlay: str
    objects: list[dict]


def overlays() -> list[Path]:
    return sorted(path for path in (K8S / "overlays").iterdir() if path.is_dir())


def render_gateway(overlay: Path) -> list[str]:
    """Write the overlay's Envoy config into `<overlay>/generated/`; returns its upstreams."""
    environ = {**_pod_paths(), **_env_file(overlay / "gateway.env")}
    try:
        gateway = GatewaySettings.load(Env(environ))
    except ConfigError as error:
        raise InfraError(f"{overlay / 'gateway.env'}: {error}") from None
    return render(gateway, out_dir=overlay / "generated")


def build(settings: Settings, overlay: Path) -> Rendered:
    """The overlay's objects, as `kustomize build` renders them (gateway config first)."""
    render_gateway(overlay)
    kustomize = settings.tools_dir / "bin" / "kustomize"
    if not kustomize.exists():
        raise InfraError(f"{kustomize} is missing; run `make setup`")
    result = subprocess.run(
        [str(kustomize), "build", str(overlay)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise InfraError(f"kustomize build {overlay} failed: {result.stderr.strip()}")
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return Rendered(overlay.name, objects)


def problems(rendered: Rendered) -> list[str]:
    """What is wrong with the overlay's objects; empty when all are valid."""
    found = []
    for obj in rendered.objects:
        api, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        name = f"{rendered.overlay}: {kind}/{obj.get('metadata', {}).get('name', '?')}"
        if api in CORE_API_VERSIONS:
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = "/".join(str(p) for p in error.path)
                found.append(f"{name}: {error.message} (at {path or 'the top'})")
        elif (api, kind) not in OPERATOR_KINDS:
            found.append(f"{name}: {api} {kind} is neither core Kubernetes nor a known operator's")
    return found


def validate_all(settings: Settings) -> int:
    """Render and check every overlay, one line each; returns the process exit code."""
    failed = False
    for overlay in overlays():
        rendered = build(settings, overlay)
        found = problems(rendered)
        core = sum(o["apiVersion"] in CORE_API_VERSIONS for o in rendered.objects)
        print(
            f"k8s  {overlay.name:<5} {len(rendered.objects)} objects: {core} core ones valid "
            f"against Kubernetes {KUBERNETES_VERSION}"
            if not found
            else f"k8s  {overlay.name:<5} {len(found)} problem(s):",
            flush=True,
        )
        for line in found:
            print(f"       {line}")
        failed = failed or bool(found)
    return 1 if failed else 0


def _pod_paths() -> dict[str, str]:
    """The base's gateway-paths ConfigMap: where the gateway pod keeps Envoy's files."""
    for doc in yaml.safe_load_all((K8S / "base" / "gateway" / "gateway.yaml").read_text()):
        if doc and doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "gateway-paths":
            return dict(doc["data"])
    raise InfraError("k8s/base/gateway/gateway.yaml has no gateway-paths ConfigMap")


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values
