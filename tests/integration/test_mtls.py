"""Mutual TLS against real service processes (ZENTRY_TLS_*, services.kit.tls).

A `user` instance started with the local CA's `user` certificate serves only
clients that present a certificate of the same CA and registers in Consul with
a check it reports itself; an impostor, a `user` process holding the feed's
certificate (a pod that took another service's name in Consul), is refused by
every caller that checks for `user` and never passes its own check.
"""

from __future__ import annotations

import subprocess
import sys

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from zentry.user.v1 import user_service_pb2, user_service_pb2_grpc

from infra import tls as local_tls
from infra.mesh import Mesh
from infra.processes import free_port
from services.kit import tls
from services.kit.discovery import Balancer, Consul
from services.kit.healthcheck import check
from services.kit.settings import TlsFiles
from tests.support import eventually, eventually_async


@pytest.fixture(scope="module")
def ca(settings) -> local_tls.LocalCa:
    return local_tls.local_ca(settings)


@pytest.fixture(scope="module")
def mesh(settings, ca):
    mesh = Mesh(settings, tls=ca)
    yield mesh
    mesh.stop_all()


@pytest.fixture(scope="module")
def user(mesh):
    """A `user` instance over mutual TLS, passing in Consul; its port."""
    return mesh.wait_healthy(mesh.start_service("user", 0))


@pytest.fixture(scope="module")
def impostor(mesh, ca):
    """A `user` process holding the feed's certificate, serving; its child and port."""
    port = free_port()
    child = mesh.start_service("user", port, ca.env("feed"))
    eventually(
        lambda: _serving(port, ca.files(local_tls.TOOLS), "feed"),
        timeout=60,
        what="the impostor serves (as what its certificate names: feed)",
    )
    return child, port


def _serving(port: int, files: TlsFiles | None, name: str) -> bool:
    try:
        return check(f"127.0.0.1:{port}", timeout=2, tls=files, server_name=name) == "SERVING"
    except grpc.RpcError:
        return False


def _refused(channel: grpc.Channel) -> grpc.RpcError:
    with channel, pytest.raises(grpc.RpcError) as refused:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
    return refused.value


def _foreign_tools_certificate(tmp_path) -> TlsFiles:
    """The tools' name, signed by another CA; trusts our CA for the server (so only the
    client's certificate can be the reason for a refusal)."""
    other = local_tls.make_ca("Not Zentry's CA")
    files = TlsFiles(tmp_path / "tools.crt", tmp_path / "tools.key", tmp_path / "other-ca.crt")
    local_tls.write(local_tls.issue(other, local_tls.TOOLS, [local_tls.TOOLS]), files, other)
    return files


def test_a_client_with_a_certificate_of_the_ca_is_served(user, ca):
    with tls.channel(f"127.0.0.1:{user}", ca.files(local_tls.TOOLS), "user") as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        assert stub.GetJwks(user_service_pb2.GetJwksRequest(), timeout=10).data
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_plaintext_client_is_refused(user):
    _refused(grpc.insecure_channel(f"127.0.0.1:{user}"))


def test_a_client_without_a_certificate_is_refused(user, ca):
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.ca_file.read_bytes())
    _refused(grpc.secure_channel(f"127.0.0.1:{user}", credentials, [(tls.NAME_OVERRIDE, "user")]))


def test_a_client_with_a_certificate_of_another_ca_is_refused(user, ca, tmp_path):
    foreign = _foreign_tools_certificate(tmp_path)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.ca_file.read_bytes(),
        private_key=foreign.key_file.read_bytes(),
        certificate_chain=foreign.cert_file.read_bytes(),
    )
    _refused(grpc.secure_channel(f"127.0.0.1:{user}", credentials, [(tls.NAME_OVERRIDE, "user")]))


def test_a_client_refuses_a_server_that_is_not_the_service_it_calls(user, ca):
    """The user instance's certificate is the CA's, but it does not name `feed`."""
    _refused(tls.channel(f"127.0.0.1:{user}", ca.files(local_tls.TOOLS), "feed"))


def test_an_instance_with_another_services_certificate_cannot_pass_for_it(
    settings, mesh, impostor, ca
):
    """A pod holding the feed's certificate registers as `user`: callers of `user` refuse
    it, and its own check (the same question, asked as `user`) never passes in Consul."""
    child, port = impostor
    tools = ca.files(local_tls.TOOLS)
    _refused(tls.channel(f"127.0.0.1:{port}", tools, "user"))
    assert _serving(port, tools, "feed"), "it serves, but only as what its certificate names"

    def its_check() -> dict | None:
        checks = httpx.get(f"{settings.consul.http_url}/v1/agent/checks", timeout=5).json()
        found = [c for c in checks.values() if c["ServiceID"] == child.instance_id]
        return found[0] if found and found[0]["Output"] else None

    seen = eventually(its_check, timeout=30, what="the impostor reports its own check")
    assert seen["Status"] == "critical", seen
    assert seen["Type"] == "ttl"
    passing = httpx.get(
        f"{settings.consul.http_url}/v1/health/service/user",
        params={"passing": "true"},
        timeout=5,
    ).json()
    assert child.instance_id not in {e["Service"]["ID"] for e in passing}


async def test_a_balancer_calls_the_service_over_mutual_tls_and_skips_the_impostor(
    settings, user, impostor, ca
):
    consul = Consul(settings.consul.http_url)
    balancer = Balancer(consul, "user", tls=ca.files(local_tls.TOOLS))
    try:
        balancer.start()
        await eventually_async(
            lambda: f"127.0.0.1:{user}" in balancer.targets,
            timeout=15,
            what="the balancer follows the user instance",
        )
        assert f"127.0.0.1:{impostor[1]}" not in balancer.targets
        target, channel = balancer.pick()
        while target != f"127.0.0.1:{user}":
            target, channel = balancer.pick()
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await balancer.aclose()
        await consul.aclose()


def test_envoy_reaches_the_service_over_mutual_tls(settings, mesh, user):
    """The gateway's upstream clusters present Envoy's certificate and check the name."""
    mesh.start_endpoint_feed()
    mesh.wait_gateway()  # the JWKS through Envoy: a call to the user instance
    jwks = httpx.get(f"{mesh.gateway_url}/.well-known/jwks.json", timeout=10)
    assert jwks.status_code == 200 and jwks.json()["keys"]
    stats = httpx.get(
        f"{settings.envoy.admin_url}/stats", params={"filter": r"^cluster\.user\.ssl\."}, timeout=5
    ).text
    counts = dict(line.split(": ", 1) for line in stats.splitlines() if ": " in line)
    assert int(counts["cluster.user.ssl.handshake"]) >= 1, stats
    assert int(counts.get("cluster.user.ssl.fail_verify_san", "0")) == 0


def test_the_health_check_command_asks_over_mutual_tls_as_its_own_service(settings, user, ca):
    """What a container's health probe runs: ZENTRY_TLS_* are the pod's own (user's) files,
    and the server must name the same service."""
    command = [sys.executable, "-m", "services.kit.healthcheck", "--address", f"127.0.0.1:{user}"]
    env = {"PATH": "/usr/bin:/bin", **ca.env("user")}
    run = {"cwd": settings.repo_dir, "capture_output": True, "text": True, "timeout": 30}
    probe = subprocess.run(command, env=env, **run)
    assert probe.returncode == 0, probe.stderr
    assert "SERVING" in probe.stdout
    plain = subprocess.run(command, env={"PATH": "/usr/bin:/bin"}, **run)
    assert plain.returncode == 1, "a plaintext probe is refused"
