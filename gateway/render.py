"""Render the gateway's files from the descriptor set: bootstrap, LDS, CDS and missing EDS."""

from __future__ import annotations

from pathlib import Path

from gateway import descriptors, envoy_config
from gateway.config import GatewaySettings
from gateway.files import write_json


def render(settings: GatewaySettings) -> list[str]:
    """Write every file; returns the upstream (Consul service) names the gateway routes to.

    Raises FileNotFoundError when the descriptor set has not been generated (`make protos`).
    """
    if not settings.descriptor_set.is_file():
        raise FileNotFoundError(
            f"{settings.descriptor_set} is missing; run `make protos` to generate it"
        )
    services = descriptors.api_services(descriptors.load(settings.descriptor_set))
    upstreams = sorted({service.upstream for service in services})
    for upstream in upstreams:  # clusters point at these; an instance-less one is empty
        eds = Path(envoy_config.eds_path(settings, upstream))
        if not eds.exists():
            write_json(eds, {"resources": [envoy_config.endpoints(upstream, [])]})
    write_json(settings.config_dir / "cds.json", envoy_config.clusters(settings, services))
    write_json(settings.config_dir / "lds.json", envoy_config.listeners(settings, services))
    write_json(settings.bootstrap_file, envoy_config.bootstrap(settings))
    return upstreams
