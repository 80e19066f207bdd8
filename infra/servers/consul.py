"""Consul as a single-server datacenter on loopback, with its UI, keeping its state on disk.

ACLs are on and deny by default. The management token (ZENTRY_CONSUL_TOKEN's local
default) is the administrator's; each service's token (infra.credentials) has the
service identity of its name, so it may register and deregister that service
only; the gateway's, and an anonymous request, may read the catalog, nothing more.
"""

from __future__ import annotations

import json

import httpx

from infra import credentials, install
from infra.servers.base import Command, Port, Server
from services.kit.roster import SERVICES

DATACENTER = "zentry-local"
#: The policy that reads services and nodes (DNS, the endpoint feed, tools).
CATALOG_READ = "zentry-catalog-read"
CATALOG_READ_RULES = 'service_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }'
#: Consul's built-in anonymous token: what a request without a token is.
ANONYMOUS = "00000000-0000-0000-0000-000000000002"


class Consul(Server):
    name = "consul"
    title = "Consul"

    def ports(self) -> list[Port]:
        consul = self.settings.consul
        return [
            Port("ZENTRY_CONSUL_HTTP_PORT", consul.http_port),
            Port("ZENTRY_CONSUL_DNS_PORT", consul.dns_port),
            Port("ZENTRY_CONSUL_DNS_PORT", consul.dns_port, udp=True),
            Port("ZENTRY_CONSUL_SERVER_PORT", consul.server_port),
            Port("ZENTRY_CONSUL_SERF_LAN_PORT", consul.serf_lan_port),
            Port("ZENTRY_CONSUL_SERF_LAN_PORT", consul.serf_lan_port, udp=True),
            Port("ZENTRY_CONSUL_SERF_WAN_PORT", consul.serf_wan_port),
            Port("ZENTRY_CONSUL_SERF_WAN_PORT", consul.serf_wan_port, udp=True),
        ]

    def probe(self) -> None:
        """Ready means a leader is elected and the catalog already lists Consul itself."""
        base = self.settings.consul.http_url
        leader = httpx.get(f"{base}/v1/status/leader", timeout=2).raise_for_status().json()
        if not leader:
            raise RuntimeError("no leader elected yet")
        passing = httpx.get(
            f"{base}/v1/health/service/consul?passing", headers=self._admin(), timeout=2
        )
        if not passing.raise_for_status().json():
            raise RuntimeError("the catalog does not list a healthy consul server yet")

    def prepare(self) -> None:
        super().prepare()
        consul = self.settings.consul
        config = {
            "datacenter": DATACENTER,
            "node_name": DATACENTER,
            "server": True,
            "bootstrap_expect": 1,
            "data_dir": str(self.data_dir / "data"),
            "bind_addr": consul.host,
            "advertise_addr": consul.host,
            "client_addr": consul.host,
            "ports": {
                "http": consul.http_port,
                "dns": consul.dns_port,
                "server": consul.server_port,
                "serf_lan": consul.serf_lan_port,
                "serf_wan": consul.serf_wan_port,
                "grpc": -1,
                "grpc_tls": -1,
            },
            "ui_config": {"enabled": True},
            "disable_update_check": True,
            "enable_script_checks": False,
            "performance": {"raft_multiplier": 1},
            "log_level": "INFO",
            "acl": {
                "enabled": True,
                "default_policy": "deny",
                "enable_token_persistence": True,
                "tokens": {
                    "initial_management": consul.token,
                    "agent": consul.token,
                },
            },
        }
        (self.data_dir / "consul.json").write_text(json.dumps(config, indent=2))

    def command(self) -> Command:
        return Command(
            argv=[
                str(install.consul_binary(self.settings)),
                "agent",
                f"-config-file={self.data_dir / 'consul.json'}",
            ],
        )

    def after_ready(self) -> None:
        """The catalog-read policy (for the anonymous token too) and every login's token."""
        with httpx.Client(
            base_url=self.settings.consul.http_url, headers=self._admin(), timeout=10
        ) as api:
            policies = {p["Name"] for p in api.get("/v1/acl/policies").raise_for_status().json()}
            if CATALOG_READ not in policies:
                api.put(
                    "/v1/acl/policy", json={"Name": CATALOG_READ, "Rules": CATALOG_READ_RULES}
                ).raise_for_status()
            read = [{"Name": CATALOG_READ}]
            api.put(f"/v1/acl/token/{ANONYMOUS}", json={"Policies": read}).raise_for_status()
            for name, login in credentials.logins(self.settings).items():
                if api.get("/v1/acl/token/self", headers=_token(login.consul_token)).is_success:
                    continue
                identity = {"ServiceIdentities": [{"ServiceName": name}]}
                api.put(
                    "/v1/acl/token",
                    json={
                        "SecretID": login.consul_token,
                        "Description": f"zentry {name} (infra.credentials)",
                        **(identity if name in SERVICES else {"Policies": read}),
                    },
                ).raise_for_status()

    def _admin(self) -> dict[str, str]:
        return _token(self.settings.consul.token)


def _token(secret: str) -> dict[str, str]:
    return {"X-Consul-Token": secret}
