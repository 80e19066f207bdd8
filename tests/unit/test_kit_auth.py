"""Tokens: issued by the user service, verified by the kit, the same way the gateway does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf import descriptor_pb2, descriptor_pool
from zentry.analytics.v1 import product_analytics_service_pb2
from zentry.api.v1 import access_pb2
from zentry.user.v1 import user_service_pb2

from services.kit.auth import (
    AuthInterceptor,
    TokenVerifier,
    optional_caller,
    public_methods,
    required_roles,
)
from services.kit.errors import PermissionDenied, Unauthenticated
from services.kit.settings import ConfigError
from services.user.tokens import TokenIssuer, ensure_keypair


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    ensure_keypair(folder / "private.pem", folder / "public.pem")
    return (folder / "private.pem").read_bytes(), (folder / "public.pem").read_bytes()


def issuer(keys, ttl=timedelta(hours=1)) -> TokenIssuer:
    return TokenIssuer(keys[0], issuer="zentry", audience="zentry-api", ttl=ttl)


def verifier(keys, audience="zentry-api") -> TokenVerifier:
    return TokenVerifier(keys[1], issuer="zentry", audience=audience)


def test_a_fresh_token_names_its_user(keys):
    token, expires = issuer(keys).issue("id-1", "ada")
    caller = verifier(keys).verify(f"Bearer {token}")
    assert (caller.user_id, caller.username) == ("id-1", "ada")
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)


def test_expiry_with_a_few_seconds_of_leeway(keys):
    past = datetime.now(UTC) - timedelta(hours=1)
    just_expired, _ = issuer(keys).issue("id-1", "ada", now=past + timedelta(seconds=2))
    verifier(keys).verify(f"Bearer {just_expired}")  # 2 s over: forgiven clock skew
    expired, _ = issuer(keys).issue("id-1", "ada", now=past - timedelta(seconds=30))
    with pytest.raises(Unauthenticated, match="expired"):
        verifier(keys).verify(f"Bearer {expired}")


def test_a_token_verified_once_is_remembered_until_it_expires(keys, monkeypatch):
    check = verifier(keys)
    token, expires = issuer(keys).issue("id-1", "ada")
    check.verify(f"Bearer {token}")
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: pytest.fail("verified twice"))
    again = check.verify(f"Bearer {token}")
    assert (again.user_id, again.username) == ("id-1", "ada")
    assert again.authorization == f"Bearer {token}"
    later = expires.timestamp() + 60  # past its expiry: not answered from memory
    monkeypatch.setattr("services.kit.auth.time.time", lambda: later)
    with pytest.raises(pytest.fail.Exception, match="verified twice"):
        check.verify(f"Bearer {token}")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "Bearer not.a.token"])
def test_missing_or_malformed(keys, header):
    with pytest.raises(Unauthenticated):
        verifier(keys).verify(header)


def test_forged_and_wrong_audience_and_alg_none(keys):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    forged, _ = TokenIssuer(pem, "zentry", "zentry-api", timedelta(hours=1)).issue("id-1", "ada")
    token, _ = issuer(keys).issue("id-1", "ada")
    unsigned = jwt.encode(jwt.decode(token, options={"verify_signature": False}), None, "none")
    for bad in [forged, unsigned]:
        with pytest.raises(Unauthenticated, match="not valid"):
            verifier(keys).verify(f"Bearer {bad}")
    with pytest.raises(Unauthenticated):
        verifier(keys, audience="someone-else").verify(f"Bearer {token}")


def test_jwks_kid_is_the_rfc7638_thumbprint_and_matches_tokens(keys):
    one = issuer(keys)
    jwk = one.jwks()["keys"][0]
    assert jwk["kid"] == one.kid and jwk["alg"] == "RS256" and jwk["use"] == "sig"
    token, _ = one.issue("id-1", "ada")
    assert jwt.get_unverified_header(token)["kid"] == one.kid
    assert jwt.PyJWK(jwk).key is not None


def test_public_methods_come_from_the_proto_option():
    service = user_service_pb2.DESCRIPTOR.services_by_name["UserService"]
    assert public_methods(service) == {
        "/zentry.user.v1.UserService/CreateUser",
        "/zentry.user.v1.UserService/CreateSession",
        "/zentry.user.v1.UserService/RefreshSession",
        "/zentry.user.v1.UserService/GetJwks",
    }


def test_roles_travel_in_the_token_and_are_required_by_name(keys):
    token, _ = issuer(keys).issue("id-1", "ada", roles=["admin"])
    admin = verifier(keys).verify(f"Bearer {token}")
    assert admin.roles == {"admin"}
    admin.require_role("admin")
    again = verifier(keys)
    plain, _ = issuer(keys).issue("id-2", "bob")
    bob = again.verify(f"Bearer {plain}")
    assert bob.roles == frozenset()
    assert again.verify(f"Bearer {plain}").roles == frozenset()  # from the cache, the same
    with pytest.raises(PermissionDenied, match="needs the 'admin' role"):
        bob.require_role("admin")


def test_roles_come_from_the_proto_option_and_public_methods_need_none():
    analytics = product_analytics_service_pb2.DESCRIPTOR.services_by_name["ProductAnalyticsService"]
    prefix = "/zentry.analytics.v1.ProductAnalyticsService/"
    assert required_roles(analytics) == {
        prefix + name: "admin"
        for name in (
            "GetEventCounts",
            "GetEventBreakdown",
            "ListTopPages",
            "GetTraffic",
            "GetFunnel",
            "GetRetention",
        )
    }
    assert not set(required_roles(analytics)) & public_methods(analytics)
    users = user_service_pb2.DESCRIPTOR.services_by_name["UserService"]
    assert required_roles(users) == {}


def test_a_method_both_public_and_needing_a_role_is_refused_at_start():
    """Found in review: the interceptor lets a public call without a token through before
    it looks at roles, so such a method would skip its role."""
    probe = descriptor_pb2.FileDescriptorProto(name="probe.proto", package="zentry.probe.v1")
    probe.message_type.add(name="Empty")
    method = probe.service.add(name="Probe").method.add(
        name="Peek", input_type=".zentry.probe.v1.Empty", output_type=".zentry.probe.v1.Empty"
    )
    method.options.Extensions[access_pb2.public] = True
    method.options.Extensions[access_pb2.role] = "admin"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(probe)
    service = pool.FindServiceByName("zentry.probe.v1.Probe")
    with pytest.raises(ConfigError, match="Probe/Peek: public and needing a role"):
        required_roles(service)


async def test_a_method_with_a_role_refuses_a_token_without_it(keys):
    traffic = "/zentry.analytics.v1.ProductAnalyticsService/GetTraffic"
    interceptor = AuthInterceptor(verifier(keys), frozenset(), {traffic: "admin"})

    async def call(_request, _context):
        return optional_caller().user_id

    plain, _ = issuer(keys).issue("id-2", "bob")
    with pytest.raises(PermissionDenied, match="needs the 'admin' role"):
        await interceptor.around(call, None, _Context(f"Bearer {plain}"), traffic)
    admin, _ = issuer(keys).issue("id-1", "ada", roles=["admin"])
    assert await interceptor.around(call, None, _Context(f"Bearer {admin}"), traffic) == "id-1"
    other = "/zentry.user.v1.UserService/GetUser"
    assert await interceptor.around(call, None, _Context(f"Bearer {plain}"), other) == "id-2"


class _Context:
    def __init__(self, authorization: str | None):
        self._metadata = [("authorization", authorization)] if authorization else []

    def invocation_metadata(self):
        return self._metadata


async def test_a_public_rpc_needs_no_token_but_a_sent_one_must_be_valid(keys):
    public = "/zentry.user.v1.UserService/CreateSession"
    interceptor = AuthInterceptor(verifier(keys), frozenset({public}))
    seen = []

    async def call(_request, _context):
        seen.append(optional_caller())
        return "done"

    assert await interceptor.around(call, None, _Context(None), public) == "done"
    token, _ = issuer(keys).issue("id-1", "ada")
    await interceptor.around(call, None, _Context(f"Bearer {token}"), public)
    assert seen[0] is None and seen[1].user_id == "id-1"
    with pytest.raises(Unauthenticated, match="not valid"):
        await interceptor.around(call, None, _Context("Bearer stale"), public)
    with pytest.raises(Unauthenticated, match="Missing token"):
        await interceptor.around(call, None, _Context(None), "/zentry.user.v1.UserService/GetUser")


def test_while_keys_rotate_tokens_of_either_key_verify_and_others_do_not(keys, tmp_path):
    """The public key file holds the new key and the previous one; the JWKS lists both, the
    signing key first; each token is checked with the key its `kid` names."""
    ensure_keypair(tmp_path / "new.pem", tmp_path / "new.pub")
    bundle = keys[1] + (tmp_path / "new.pub").read_bytes()
    old = issuer(keys)
    new = TokenIssuer(
        (tmp_path / "new.pem").read_bytes(), "zentry", "zentry-api", timedelta(hours=1), bundle
    )
    assert [k["kid"] for k in new.jwks()["keys"]] == [new.kid, old.kid]
    check = TokenVerifier(bundle, issuer="zentry", audience="zentry-api")
    for signer in (old, new):
        token, _ = signer.issue("id-1", "ada", session_id="s-1")
        caller = check.verify(f"Bearer {token}")
        assert (caller.user_id, caller.session_id) == ("id-1", "s-1")
    only_old = verifier(keys)
    token, _ = new.issue("id-1", "ada")
    with pytest.raises(Unauthenticated, match="not valid"):
        only_old.verify(f"Bearer {token}")
    claims = jwt.decode(token, options={"verify_signature": False})
    mislabelled = jwt.encode(claims, keys[0], "RS256", headers={"kid": new.kid})
    with pytest.raises(Unauthenticated, match="not valid"):
        check.verify(f"Bearer {mislabelled}")  # signed with the old key, naming the new one
