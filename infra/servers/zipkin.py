"""Zipkin, the trace collector and viewer: Maven Central's server jar on the machine's Java.

It keeps spans in memory (the newest MAX_SPANS), so a restart starts empty:
traces are for looking at what the mesh does now, not a record. Envoy's native
tracer and the services' OpenTelemetry exporter both send it Zipkin's JSON v2.
"""

from __future__ import annotations

import os

import httpx

from infra import install
from infra.servers.base import Command, Port, Server

#: The spans kept; older traces are dropped. A span with its SQL text takes up to a few KB
#: of heap: 200,000 of them (a `make bench` at 100 %) overflowed a 384 MB heap.
MAX_SPANS = 50_000


class Zipkin(Server):
    name = "zipkin"
    title = "Zipkin"

    def ports(self) -> list[Port]:
        return [Port("ZENTRY_ZIPKIN_PORT", self.settings.zipkin.port)]

    def probe(self) -> None:
        response = httpx.get(f"{self.settings.zipkin.url}/health", timeout=2)
        if response.status_code != 200 or response.json().get("status") != "UP":
            raise RuntimeError(f"/health answered {response.status_code} {response.text[:200]!r}")

    def command(self) -> Command:
        zipkin = self.settings.zipkin
        return Command(
            argv=[
                self.settings.java,
                f"-Xmx{self.settings.zipkin_heap}",
                "-XX:+UseSerialGC",
                "-jar", str(install.zipkin_jar(self.settings)),
                # Loopback only, as every local server.
                f"--armeria.ports[0].ip={zipkin.host}",
                f"--armeria.ports[0].port={zipkin.port}",
                "--armeria.ports[0].protocols[0]=http",
            ],
            env={**os.environ, "STORAGE_TYPE": "mem", "MEM_MAX_SPANS": str(MAX_SPANS)},
        )  # fmt: skip
