"""Render the gateway's files from the descriptor set: bootstrap, LDS, CDS and missing EDS."""

from __future__ import annotations

from pathlib import Path

from gateway import descriptors, docs, envoy_config, webapp
from gateway.config import GatewaySettings
from gateway.files import write_json
from gateway.secret import ensure_secret


def upstreams(settings: GatewaySettings) -> list[str]:
    """The upstream (Consul service) names the gateway routes to, from the descriptor set.

    Raises FileNotFoundError when the descriptor set has not been generated (`make protos`).
    """
    return sorted({service.upstream for service in _services(settings)})


def render(settings: GatewaySettings, out_dir: Path | None = None) -> list[str]:
    """Write bootstrap, LDS and CDS, and an empty EDS file for each upstream that has none.

    The files name the paths in `settings` (where Envoy reads them); `out_dir`
    writes them elsewhere instead, e.g. into a Kubernetes ConfigMap's source,
    and then no EDS file is written (the feed makes them where Envoy runs) and
    Swagger UI's files are not looked for (the pod has them). Returns the
    upstream names. Raises FileNotFoundError for a missing generated file or,
    in place, missing Swagger UI files (Envoy would refuse the listener).
    """
    services = _services(settings)
    target = out_dir or settings.config_dir
    if out_dir is None:
        for missing, where in (
            (docs.missing_ui_files(settings), settings.docs_dir),
            (webapp.missing_files(settings), settings.web_dir),
        ):
            if missing:
                raise FileNotFoundError(
                    f"{', '.join(missing)} missing from {where}; run `make tools`"
                )
        seed_endpoints(settings)
        ensure_secret(settings.secret_file)  # a local run's; Kubernetes mounts a Secret
    write_json(target / envoy_config.SECRET_SDS_FILE, envoy_config.secret_discovery(settings))
    for name, secrets in envoy_config.upstream_tls_secrets(settings).items():
        write_json(target / name, secrets)
    write_json(target / "cds.json", envoy_config.clusters(settings, services))
    write_json(target / "lds.json", envoy_config.listeners(settings, services))
    write_json(target / settings.bootstrap_file.name, envoy_config.bootstrap(settings))
    return sorted({service.upstream for service in services})


def seed_endpoints(settings: GatewaySettings) -> list[str]:
    """An empty EDS file for each upstream that has none (Envoy needs the file to exist)."""
    names = upstreams(settings)
    for upstream in names:
        eds = Path(envoy_config.eds_path(settings, upstream))
        if not eds.exists():
            write_json(eds, {"resources": [envoy_config.endpoints(upstream, [])]})
    return names


def _services(settings: GatewaySettings) -> list[descriptors.ApiService]:
    if not settings.descriptor_set.is_file():
        raise FileNotFoundError(
            f"{settings.descriptor_set} is missing; run `make protos` to generate it"
        )
    return descriptors.api_services(descriptors.load(settings.descriptor_set))
