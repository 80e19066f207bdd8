"""Consul as a single-server datacenter on loopback, with its UI, keeping its state on disk."""

from __future__ import annotations

import json

import httpx

from infra import install
from infra.servers.base import Command, Port, Server

DATACENTER = "zentry-local"


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
        passing = httpx.get(f"{base}/v1/health/service/consul?passing", timeout=2)
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
