"""The Kubernetes manifests in k8s/: render every overlay and check it offline.

For each overlay (k8s/overlays/<name>):

1. render the gateway's Envoy config into `<overlay>/generated/` with the same
   generator as `make dev` (gateway.render), from the overlay's `gateway.env`
   and the in-pod paths of the base's `gateway-paths` ConfigMap;
2. `kustomize build` it;
3. validate every core Kubernetes object against the Kubernetes OpenAPI schema
   (kubernetes-validate, offline, strict: unknown fields are errors), and every
   operator object (the Prometheus operator's monitors and rules, cert-manager's
   issuers and certificates, CloudNativePG's cluster, databases and pooler,
   Strimzi's Kafka, node pool, topics and users) against its CRD's schema, fetched
   by `make setup` at the versions infra/toolchain/ pins (jsonschema, as strict);
   any other object is an error unless it is one of OPERATOR_KINDS.

The rules' PromQL is not parsed here: promtool took about 4 minutes and 3.5 GB of
modules and build cache to build on 2 cores.

`python -m infra k8s` runs this for every overlay (what `make k8s-validate` does).
The project's own rules over the rendered objects are tests:
tests/unit/test_k8s_manifests.py.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

from gateway.config import GatewaySettings
from gateway.render import render
from infra import config, install
from infra.config import Settings
from infra.errors import InfraError
from services.kit.settings import ConfigError, Env

K8S = config.REPO_DIR / "k8s"
#: The oldest Kubernetes the manifests are written for (native sidecars, gRPC probes).
KUBERNETES_VERSION = "1.33"
CORE_API_VERSIONS = {
    "v1",
    "apps/v1",
    "policy/v1",
    "autoscaling/v2",
    "batch/v1",
    "networking.k8s.io/v1",
}
#: Resources of the operators k8s/README.md installs, checked against the CRDs of the
#: versions infra/toolchain/ pins (install.operator_crds).
CRD_API_VERSIONS = {
    "monitoring.coreos.com/v1",
    "cert-manager.io/v1",
    "postgresql.cnpg.io/v1",
    "kafka.strimzi.io/v1beta2",
}
#: Resources of operators whose CRDs setup cannot fetch, left to those operators to
#: validate (none today).
OPERATOR_KINDS: set[tuple[str, str]] = set()


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


def problems(rendered: Rendered, settings: Settings | None = None) -> list[str]:
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
        elif (api, kind) in OPERATOR_KINDS:
            continue
        elif api in CRD_API_VERSIONS:
            validator = crd_validators(settings or config.load()).get((api, kind))
            if validator is None:
                found.append(f"{name}: {api} {kind} is not among the CRDs setup fetched")
                continue
            for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path))):
                path = "/".join(str(p) for p in error.path)
                found.append(f"{name}: {_shorten(error.message)} (at {path or 'the top'})")
        else:
            found.append(f"{name}: {api} {kind} is neither core Kubernetes nor a known operator's")
    return found


def crd_validators(settings: Settings) -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) → a validator of the CRD's schema; raises InfraError before setup."""
    return _validators(tuple(install.operator_crds(settings)))


@functools.cache
def _validators(files: tuple[Path, ...]) -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    validators = {}
    for file in files:
        crd = yaml.load(file.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version["served"]:
                schema = strict(version["schema"]["openAPIV3Schema"])
                validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft4Validator(
                    schema
                )
    return validators


def strict(schema: dict) -> dict:
    """A CRD's OpenAPI v3 schema as JSON Schema that, like the API server's strict field
    validation (`kubectl apply`'s default), rejects unknown fields: an object schema
    listing its properties takes no others unless it preserves unknown fields."""
    node = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if "properties" in node:
        node["properties"] = {name: strict(s) for name, s in node["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            node.setdefault("additionalProperties", False)
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = strict(node["additionalProperties"])
    if "items" in node:
        node["items"] = strict(node["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in node:
            node[key] = [strict(s) for s in node[key]]
    if node.pop("nullable", False) and "type" in node:
        node["type"] = [node["type"], "null"]
    if node.get("pattern", "").startswith("^(?i)"):  # Go's inline flag; Python wants it first
        node["pattern"] = "(?i)^" + node["pattern"][len("^(?i)") :]
    return node


def _shorten(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


def validate_all(settings: Settings) -> int:
    """Render and check every overlay, one line each; returns the process exit code."""
    failed = False
    for overlay in overlays():
        rendered = build(settings, overlay)
        found = problems(rendered, settings)
        core = sum(o["apiVersion"] in CORE_API_VERSIONS for o in rendered.objects)
        crd = sum(o["apiVersion"] in CRD_API_VERSIONS for o in rendered.objects)
        print(
            f"k8s  {overlay.name:<5} {len(rendered.objects)} objects: {core} core ones valid "
            f"against Kubernetes {KUBERNETES_VERSION}, {crd} against their operators' CRDs "
            f"({operator_versions()})"
            if not found
            else f"k8s  {overlay.name:<5} {len(found)} problem(s):",
            flush=True,
        )
        for line in found:
            print(f"       {line}")
        failed = failed or bool(found)
    return 1 if failed else 0


def operator_versions() -> str:
    """The pinned operator versions whose CRDs validate, for the summary line."""
    go = {
        "Prometheus operator": ("prometheus-operator", install.PROMETHEUS_OPERATOR),
        **{tool: (tool, module) for tool, (module, _, _) in install.GO_MODULE_CRDS.items()},
    }
    versions = [f"{name} {install.go_module_version(*pin)}" for name, pin in go.items()]
    return ", ".join([*versions, f"Strimzi {install.strimzi_version()}"])


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
