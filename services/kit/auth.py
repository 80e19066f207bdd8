"""Who is calling: JWT verification as a server interceptor.

The gateway already checks tokens; each service checks again, because the mesh
is reachable without the gateway (grpcurl, other services). Which RPCs are
public is declared once, in the protos, by the `(zentry.api.v1.public)` method
option; `public_methods` reads it from the service descriptors.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import json
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from google.protobuf.descriptor import ServiceDescriptor
from jwt.algorithms import RSAAlgorithm
from zentry.api.v1 import access_pb2

from services.kit.errors import PermissionDenied, Unauthenticated
from services.kit.interceptors import INFRASTRUCTURE_PREFIXES, Around, metadata_value
from services.kit.settings import ConfigError

ALGORITHM = "RS256"
LEEWAY_SECONDS = 5  # clock skew we forgive; the gateway is set to the same


@dataclass(frozen=True)
class Caller:
    """The authenticated user of the current call.

    `authorization` is the header the call came with, to pass on when this
    service calls another on the user's behalf.
    """

    user_id: str
    username: str
    authorization: str = field(default="", repr=False, compare=False)
    #: Granted by an operator (e.g. "admin"), from the token's `roles` claim.
    roles: frozenset[str] = frozenset()
    #: The session (log-in) the token belongs to, from its `sid` claim.
    session_id: str = ""

    def require_role(self, role: str) -> None:
        """PermissionDenied unless the token carries `role`."""
        if role not in self.roles:
            raise PermissionDenied(
                f"This call needs the {role!r} role; "
                "ask an operator to grant it, then log in again."
            )


_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)


def current_caller() -> Caller:
    """The caller of the RPC being served; raises Unauthenticated if nobody signed in."""
    caller = _caller.get()
    if caller is None:
        raise Unauthenticated("This call needs a signed-in user.")
    return caller


def optional_caller() -> Caller | None:
    """On a public RPC: the signed-in caller if the call carried a token, else None."""
    return _caller.get()


def public_methods(*services: ServiceDescriptor) -> frozenset[str]:
    """gRPC paths ("/pkg.Service/Method") of the methods marked `(zentry.api.v1.public)`."""
    return frozenset(
        f"/{service.full_name}/{method.name}"
        for service in services
        for method in service.methods
        if method.GetOptions().Extensions[access_pb2.public]
    )


def required_roles(*services: ServiceDescriptor) -> dict[str, str]:
    """gRPC paths of the methods marked `(zentry.api.v1.role)`, with the role each needs.

    ConfigError for a method also marked public: a call without a token would skip the
    role, so the protos must choose one.
    """
    roles = {
        f"/{service.full_name}/{method.name}": method.GetOptions().Extensions[access_pb2.role]
        for service in services
        for method in service.methods
    }
    roles = {path: role for path, role in roles.items() if role}
    if both := sorted(set(roles) & public_methods(*services)):
        raise ConfigError(f"{', '.join(both)}: public and needing a role; the protos must choose")
    return roles


_PEM_KEY = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


def public_keys(pem: bytes) -> dict[str, RSAPublicKey]:
    """Every public key of a PEM file, by key id: while signing keys rotate, the file holds
    the new key and the previous one, and tokens signed with either verify."""
    keys = [load_pem_public_key(block) for block in _PEM_KEY.findall(pem)]
    if not keys or not all(isinstance(k, RSAPublicKey) for k in keys):
        raise ValueError("the token verification file must hold RSA public keys (PEM)")
    return {key_id(key): key for key in keys}


def key_id(key: RSAPublicKey) -> str:
    """The key's RFC 7638 thumbprint (SHA-256 over e, kty and n): a `kid` that a new key
    gets by itself."""
    jwk = json.loads(RSAAlgorithm.to_jwk(key))
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class TokenVerifier:
    """Checks an RS256 access token's signature, expiry, issuer and audience.

    The key is the one the token's `kid` names among `public_keys` (a token
    without one must be signed with the only key there is). A client sends the
    same token with every call until it expires, so a token verified once is
    remembered (up to `CACHE_SIZE` of them) with its expiry: the same bytes
    verify the same way, and only the clock is checked again.
    """

    CACHE_SIZE = 10_000

    def __init__(self, public_key_pem: bytes, issuer: str, audience: str):
        self._keys = public_keys(public_key_pem)  # parsed once, not per call
        self._issuer = issuer
        self._audience = audience
        self._verified: dict[str, tuple[float, Caller]] = {}

    @classmethod
    def from_file(cls, path: Path, issuer: str, audience: str) -> TokenVerifier:
        return cls(path.read_bytes(), issuer, audience)

    def verify(self, authorization: str | None) -> Caller:
        """The caller a `Bearer <token>` header speaks for; raises Unauthenticated otherwise."""
        if not authorization:
            raise Unauthenticated("Missing token: send 'Authorization: Bearer <token>'.")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Malformed Authorization header: expected 'Bearer <token>'.")
        known = self._verified.get(token)
        if known is not None and time.time() < known[0] + LEEWAY_SECONDS:
            return replace(known[1], authorization=authorization)
        try:
            claims = jwt.decode(
                token,
                self._key_of(token),
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("The token has expired; log in again.") from None
        except jwt.PyJWTError:
            raise Unauthenticated("The token is not valid; log in again.") from None
        roles = claims.get("roles", [])
        caller = Caller(
            user_id=claims["sub"],
            username=claims.get("username", ""),
            authorization=authorization,
            roles=frozenset(roles if isinstance(roles, list) else ()),
            session_id=str(claims.get("sid", "")),
        )
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (float(claims["exp"]), caller)
        return caller

    def _key_of(self, token: str) -> RSAPublicKey:
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        key = self._keys.get(kid)
        if key is None:
            raise jwt.InvalidKeyError(f"no key {kid!r}")
        return key


class AuthInterceptor(Around):
    """Every RPC but the public ones and health/reflection needs a valid bearer token,
    and one marked with a role needs a token carrying it (PERMISSION_DENIED otherwise).

    A public RPC needs none, but a token it is sent must be valid: it says who
    the caller is (optional_caller), and a stale one is a 401 the client can
    act on rather than a call silently made as nobody. The gateway does the same.
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        public: frozenset[str],
        roles: dict[str, str] | None = None,
    ):
        self._verifier = verifier
        self._public = public
        self._roles = roles or {}

    def applies_to(self, method: str) -> bool:
        return not method.startswith(INFRASTRUCTURE_PREFIXES)

    async def around(self, call, request, context, method):
        authorization = metadata_value(context, "authorization")
        if method in self._public and not authorization:
            return await call(request, context)
        caller = self._verifier.verify(authorization)
        if role := self._roles.get(method):
            caller.require_role(role)
        token = _caller.set(caller)
        try:
            return await call(request, context)
        finally:
            _caller.reset(token)
