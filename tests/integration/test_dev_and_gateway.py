"""`make dev` (python -m infra dev) end to end, and the gateway refusing a foreign Envoy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import httpx
import pytest

from infra import install
from infra.errors import InfraError
from infra.mesh import gateway_url
from infra.processes import free_port
from infra.servers.envoy import Envoy
from services.kit.addresses import EnvoyAddress
from services.kit.roster import SERVICES
from tests.support import eventually


def test_dev_serves_the_api_and_ctrl_c_stops_what_it_started(settings):
    # Free ports, so it runs beside a developer's own make dev.
    env = {**os.environ, **{f"ZENTRY_{name.upper()}_PORT": "0" for name in SERVICES}}
    dev = subprocess.Popen(
        [sys.executable, "-m", "infra", "dev"],
        cwd=settings.repo_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = dev.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "grpcurl" in line:
                break
        output = "".join(lines)
        assert "Zentry runs." in output, output
        port = _instance_port(output)
        base = gateway_url(settings)
        assert httpx.get(f"{base}/.well-known/jwks.json", timeout=5).status_code == 200
        dev.send_signal(signal.SIGINT)
        assert dev.wait(60) == 0
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()
    services = httpx.get(f"{settings.consul.http_url}/v1/agent/services", timeout=5).json()
    assert all(s["Port"] != port for s in services.values()), "the instance deregistered"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}", timeout=2)


def _instance_port(banner: str) -> int:
    line = next(line for line in banner.splitlines() if line.strip().startswith("user-1"))
    return int(line.split()[1].rsplit(":", 1)[1])


def test_infra_up_refuses_an_envoy_running_another_config(settings, tmp_path):
    admin = free_port()
    bootstrap = tmp_path / "foreign.json"
    address = {"socket_address": {"address": "127.0.0.1", "port_value": admin}}
    bootstrap.write_text(json.dumps({"admin": {"address": address}}))
    foreign = subprocess.Popen(
        [
            str(install.envoy_binary()),
            "--config-path",
            str(bootstrap),
            "--disable-hot-restart",
            "--base-id",
            "7",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        moved = replace(settings, envoy=EnvoyAddress("127.0.0.1", admin, free_port()))
        envoy = Envoy(moved)
        eventually(lambda: _answers(envoy), timeout=30, what="the foreign Envoy answers")
        listeners = envoy.gateway.config_dir / "lds.json"
        before = listeners.read_text() if listeners.exists() else None
        with pytest.raises(InfraError, match=f"runs {bootstrap}, not"):
            envoy.after_ready()
        after = listeners.read_text() if listeners.exists() else None
        assert after == before, "our running gateway's config was left alone"
    finally:
        foreign.terminate()
        foreign.wait(10)


def _answers(envoy: Envoy) -> bool:
    try:
        envoy.probe()
    except Exception:
        return False
    return True
