"""End-to-end tests: REST through Envoy to real service instances found through Consul.

The package starts the infrastructure (as `make infra-up`), the gateway's
endpoint feed and, as in production (k8s/), with mutual TLS between Envoy and
the services and between services, two API instances of each service
and one consumer instance of each service that consumes, on free ports
(infra.mesh.E2E), and waits until the gateway serves them all; it stops what
it started when its last test is done. Thresholds are lowered so the tests
can reach them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis

from gateway.config import NO_CLIENT_LIMITS
from infra import config
from infra.config import Settings
from infra.mesh import CONSUMING, E2E, Child, Mesh, running
from services.user.tokens import ensure_keypair
from tests.support import unique

TEST_ENV = {
    "ZENTRY_CELEBRITY_THRESHOLD": "3",
    "ZENTRY_CELEBRITY_RELEASE_BELOW": "2",
    "ZENTRY_LOGIN_MAX_FAILURES": "5",
    "ZENTRY_LOGIN_LOCKOUT": "60",
    "ZENTRY_DRAIN_DELAY": "1.5",
    # Nights left open are abandoned within a second, not a minute.
    "ZENTRY_ABANDON_INTERVAL": "1",
    # Short timelines: deep feed pages leave Redis for PostgreSQL after a few nights.
    "ZENTRY_FEED_TIMELINE_LENGTH": "10",
    "ZENTRY_MAX_FOLLOWING": "6",
    # Concurrent log-ins to one account take turns (services/user/passwords.py): on a slow
    # machine the fifth of five could otherwise wait out the 2 s and answer 429, not 401.
    "ZENTRY_PASSWORD_WAIT": "10",
    # Spans reach Zipkin within half a second (the default is every 5 s).
    "OTEL_BSP_SCHEDULE_DELAY": "500",
}
#: Every test logs in from this machine's address: only the intake keeps its per-client
#: limit here (600 calls a minute; test_hostile_input reaches it from an address of its own).
GATEWAY_ENV = {
    name: value for name, value in NO_CLIENT_LIMITS.items() if not name.endswith("_EVENTS")
}
PASSWORD = "sleep-well-42"


@pytest.fixture(scope="session")
def settings() -> Settings:
    return config.load()


@dataclass(frozen=True)
class SigningKeys:
    """The mesh signs with `private` and verifies with both public keys (a rotation under
    way, as README.md describes it): `next_private` is the key it rotates to."""

    private: Path
    next_private: Path
    bundle: Path


def signing_keys(settings: Settings) -> SigningKeys:
    folder = settings.run_dir / "secrets"
    ensure_keypair(folder / "jwt-private.pem", folder / "jwt-public.pem")
    ensure_keypair(folder / "jwt-next-private.pem", folder / "jwt-next-public.pem")
    bundle = folder / "jwt-e2e-public.pem"
    bundle.write_bytes(
        (folder / "jwt-public.pem").read_bytes() + (folder / "jwt-next-public.pem").read_bytes()
    )
    return SigningKeys(folder / "jwt-private.pem", folder / "jwt-next-private.pem", bundle)


@pytest.fixture(scope="package")
def keys(settings: Settings) -> Iterator[SigningKeys]:
    """Every process of the mesh (restarts and replays too) gets these through the environment."""
    keys = signing_keys(settings)
    names = ("ZENTRY_JWT_PRIVATE_KEY_FILE", "ZENTRY_JWT_PUBLIC_KEY_FILE")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(dict(zip(names, (str(keys.private), str(keys.bundle)), strict=True)))
    yield keys
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="package")
def mesh(settings: Settings, keys: SigningKeys) -> Iterator[Mesh]:
    """The E2E layout, ready: Envoy routes to every API instance and serves the JWKS. It runs
    mutual TLS (the local CA's certificates, infra.tls), so every test goes through it; a
    test that calls an instance itself uses `mesh.channel` or `mesh.grpcurl_flags`."""
    with running(settings, E2E, env=TEST_ENV, gateway_env=GATEWAY_ENV, tls=True) as mesh:
        yield mesh


def start_consumers(mesh: Mesh) -> list[Child]:
    """The E2E layout's consumer instances, started again (`Mesh.wait_serving` waits)."""
    return [
        mesh.start_service(service, None, TEST_ENV, role="consumer")
        for service in CONSUMING
        for _ in range(E2E.consumers)
    ]


@contextmanager
def consumers_stopped(mesh: Mesh) -> Iterator[None]:
    """Every consumer instance stopped for the block (events wait in Kafka), then started again."""
    consumers = [child for child in mesh.children if child.role == "consumer"]
    for child in consumers:
        child.process.terminate()
    for child in consumers:
        mesh.stop(child)
    try:
        yield
    finally:
        mesh.wait_serving(start_consumers(mesh))


@pytest.fixture(scope="package")
def gateway(mesh: Mesh) -> str:
    """The REST base URL; the mesh fixture has waited until Envoy routes to every instance."""
    return mesh.gateway_url


@pytest.fixture(scope="package")
def api_document(gateway: str):
    """The OpenAPI document the gateway serves, as schemathesis reads it."""
    return schemathesis.openapi.from_url(f"{gateway}/openapi.json")


@pytest.fixture
def api(gateway: str, api_document) -> Iterator[httpx.Client]:
    """A REST client whose every answer must be one the API document describes."""

    def conforms(response: httpx.Response) -> None:
        response.read()
        request = response.request
        operation = api_document.find_operation_by_path(request.method, request.url.path)
        if operation is not None:  # /healthz, /docs and the like are not API operations
            operation.validate_response(response)

    hooks = {"response": [conforms]}
    with httpx.Client(base_url=gateway, timeout=20, event_hooks=hooks) as client:
        yield client


@dataclass
class Account:
    username: str
    email: str
    password: str
    token: str
    id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def register(api: httpx.Client, **fields) -> httpx.Response:
    body = {"username": unique("u").replace("-", "_")[:30], "password": PASSWORD, **fields}
    body.setdefault("email", f"{body['username']}@example.com")
    return api.post("/v1/users", json=body)


@pytest.fixture
def new_account(api: httpx.Client):
    """Factory: a registered, logged-in account with readable defaults."""

    def make(**fields) -> Account:
        response = register(api, **fields)
        assert response.status_code == 200, response.text
        user = response.json()
        password = fields.get("password", PASSWORD)
        session = api.post(
            "/v1/sessions", json={"username": user["username"], "password": password}
        )
        assert session.status_code == 200, session.text
        return Account(
            user["username"], user["email"], password, session.json()["accessToken"], user["id"]
        )

    return make
