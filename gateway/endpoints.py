"""The endpoint feed: Consul's healthy instances of each upstream → Envoy's EDS files.

One watch per upstream (a Consul blocking query), so an instance that starts,
deregisters or fails its health check reaches Envoy within about a second,
with no Envoy restart. If Consul is unreachable the files keep their last
content: Envoy goes on routing to the instances it knew.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from gateway import envoy_config
from gateway.config import GatewaySettings
from gateway.files import write_json
from services.kit.discovery import Consul

_log = logging.getLogger(__name__)


async def feed(settings: GatewaySettings, upstreams: list[str]) -> None:
    """Follow every upstream until cancelled."""
    consul = Consul(settings.consul_url, settings.consul_token)
    try:
        await asyncio.gather(*(_follow(consul, settings, name) for name in upstreams))
    finally:
        await consul.aclose()


async def _follow(consul: Consul, settings: GatewaySettings, upstream: str) -> None:
    path = Path(envoy_config.eds_path(settings, upstream))
    async for instances in consul.watch_healthy(upstream):
        addresses = [(i.address, i.port) for i in instances]
        write_json(path, {"resources": [envoy_config.endpoints(upstream, addresses)]})
        _log.info("endpoints of %s: %s", upstream, [f"{h}:{p}" for h, p in addresses] or "none")
