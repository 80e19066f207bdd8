"""The mesh around the user service: balancing through Envoy, losing instances, reflection."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2
from zentry.user.v1 import user_service_pb2, user_service_pb2_grpc

from infra.mesh import routed_ports, served_counts
from tests.e2e.conftest import PASSWORD, TEST_ENV
from tests.support import eventually


@pytest.fixture
def extra_instance(mesh, settings):
    """A third user instance, routed by Envoy, for a test to kill; stopped if it survives."""
    child = mesh.start_service("user", 0, TEST_ENV)
    mesh.wait_healthy(child)
    eventually(
        lambda: child.port in routed_ports(settings),
        timeout=30,
        what=f"Envoy routes to the new instance on {child.port}",
    )
    yield child
    if child.alive():
        mesh.stop(child)


def consul_instance_ids(settings) -> set[str]:
    services = httpx.get(f"{settings.consul.http_url}/v1/agent/services", timeout=5).json()
    return set(services)


def test_the_gateway_spreads_calls_over_the_instances(api, new_account, mesh, settings):
    account = new_account()
    ports = {c.port for c in mesh.children if c.name.startswith("user-") and c.alive()}
    before = served_counts(settings)
    for _ in range(40):
        assert api.get("/v1/users/me", headers=account.auth).status_code == 200
    after = served_counts(settings)
    served = {port for port in ports if after.get(port, 0) > before.get(port, 0)}
    assert served == ports, f"calls reached {served}, instances are {ports}"


def test_calls_keep_succeeding_when_an_instance_is_killed(
    api, new_account, mesh, settings, extra_instance
):
    account = new_account()
    mesh.stop(extra_instance, signal.SIGKILL)
    failures, calls = [], 0
    deadline = time.monotonic() + 20
    while extra_instance.port in routed_ports(settings) and time.monotonic() < deadline:
        calls += 1
        response = api.get("/v1/users/me", headers=account.auth)
        if response.status_code != 200:
            failures.append(response.text)
        time.sleep(0.05)
    assert extra_instance.port not in routed_ports(settings), "Consul's check never removed it"
    for _ in range(20):
        calls += 1
        if (response := api.get("/v1/users/me", headers=account.auth)).status_code != 200:
            failures.append(response.text)
    assert not failures, f"{len(failures)} of {calls} calls failed: {failures[:3]}"


def test_a_sigtermed_instance_deregisters_and_drops_no_call(
    api, gateway, new_account, mesh, settings, extra_instance
):
    account = new_account()
    results: list[int] = []
    stop = threading.Event()

    def keep_calling() -> None:
        with httpx.Client(base_url=gateway, timeout=30) as client:
            while not stop.is_set():
                # Log-ins are slow (argon2): many are in flight when SIGTERM lands.
                body = {"username": account.username, "password": PASSWORD}
                results.append(client.post("/v1/sessions", json=body).status_code)

    # Fewer at once than the log-in guard allows in flight for one account (5 here).
    threads = [threading.Thread(target=keep_calling) for _ in range(4)]
    for thread in threads:
        thread.start()
    before = served_counts(settings).get(extra_instance.port, 0)
    eventually(
        lambda: served_counts(settings).get(extra_instance.port, 0) > before + 3,
        timeout=20,
        what="the new instance serves log-ins",
    )
    code = mesh.stop(extra_instance, signal.SIGTERM)
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join()
    assert code == 0
    assert extra_instance.instance_id not in consul_instance_ids(settings)
    assert results and all(status == 200 for status in results), (
        f"{sum(s != 200 for s in results)} of {len(results)} calls failed: {sorted(set(results))}"
    )


def test_grpcurl_lists_and_describes_through_reflection(mesh, settings):
    grpcurl = str(settings.tools_dir / "bin" / "grpcurl")
    target = f"127.0.0.1:{next(c.port for c in mesh.children if c.name.startswith('user-'))}"
    flags = mesh.grpcurl_flags("user")  # the tools' certificate: the mesh runs mutual TLS
    listed = subprocess.run(
        [grpcurl, *flags, target, "list"], capture_output=True, text=True, timeout=30
    )
    assert listed.returncode == 0, listed.stderr
    assert {"zentry.user.v1.UserService", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    described = subprocess.run(
        [grpcurl, *flags, target, "describe", "zentry.user.v1.UserService.FollowUser"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert described.returncode == 0, described.stderr
    assert "rpc FollowUser ( .zentry.user.v1.FollowUserRequest )" in described.stdout
    health = subprocess.run(
        [
            grpcurl,
            *flags,
            "-d",
            '{"service": "zentry.user.v1.UserService"}',
            target,
            "grpc.health.v1.Health/Check",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert '"status": "SERVING"' in health.stdout


def test_services_check_tokens_themselves_behind_the_gateway(mesh, new_account):
    """The mesh is reachable without Envoy (grpcurl, other services): each service checks again."""
    account = new_account()
    port = next(c.port for c in mesh.children if c.name.startswith("user-") and c.alive())
    with mesh.channel(port, "user") as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        me = user_service_pb2.GetUserRequest(username="me")
        for metadata in [(), (("authorization", "Bearer forged.token.here"),)]:
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetUser(me, metadata=metadata, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert stub.GetJwks(user_service_pb2.GetJwksRequest(), timeout=10).data  # public
        auth = (("authorization", f"Bearer {account.token}"),)
        assert stub.GetUser(me, metadata=auth, timeout=10).username == account.username

        with pytest.raises(grpc.RpcError) as bad:
            stub.FollowUser(
                user_service_pb2.FollowUserRequest(username=account.username),
                metadata=auth,
                timeout=10,
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = dict(bad.value.trailing_metadata())["grpc-status-details-bin"]
        status = status_pb2.Status.FromString(details)
        violation = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(violation)
        assert violation.field_violations[0].field == "username"
