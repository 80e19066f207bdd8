"""Access tokens: RS256 JWTs signed with the user service's private key.

The public half is published as a JWKS (GetJwks, /.well-known/jwks.json),
with the other keys tokens may still be signed with while keys rotate: the
gateway reads it there and every service verifies with the same keys
(services.kit.auth). `kid` is the key's RFC 7638 thumbprint, so a rotated key
gets a new id by itself. A token names its session (`sid`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from services.kit.auth import ALGORITHM, key_id, public_keys


class TokenIssuer:
    """Signs with the private key; publishes its public half and `verifying` ones.

    To rotate: add the new public key to every service's ZENTRY_JWT_PUBLIC_KEY_FILE
    beside the old one; once the gateway has fetched the JWKS again (its cache, 5
    minutes), sign with the new private key; once the old key's last tokens have
    expired (ZENTRY_TOKEN_TTL), drop it from the file.
    """

    def __init__(
        self,
        private_key_pem: bytes,
        issuer: str,
        audience: str,
        ttl: timedelta,
        verifying: bytes = b"",
    ):
        self._key = serialization.load_pem_private_key(private_key_pem, password=None)
        if not isinstance(self._key, rsa.RSAPrivateKey):
            raise ValueError("the token signing key must be an RSA private key")
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl
        self.kid = key_id(self._key.public_key())
        keys = {**(public_keys(verifying) if verifying else {}), self.kid: self._key.public_key()}
        self._jwks = {
            "keys": [
                {**json.loads(RSAAlgorithm.to_jwk(key)), "kid": kid, "alg": ALGORITHM, "use": "sig"}
                for kid, key in sorted(keys.items(), key=lambda item: item[0] != self.kid)
            ]
        }

    def issue(
        self,
        user_id: str,
        username: str,
        roles: Iterable[str] = (),
        session_id: str = "",
        now: datetime | None = None,
    ) -> tuple[str, datetime]:
        """A signed token for the user (their roles, their session) and when it expires."""
        now = now or datetime.now(UTC)
        expires = now + self._ttl
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": user_id,
            "username": username,
            "roles": sorted(roles),
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
        }
        if session_id:
            claims["sid"] = session_id
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})
        return token, expires.replace(microsecond=0)

    def jwks(self) -> dict:
        return self._jwks


def ensure_keypair(private_path: Path, public_path: Path) -> None:
    """Create a 2048-bit RSA key pair for local runs unless one exists (never in production)."""
    if private_path.exists() and public_path.exists():
        return
    private_path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private_path.chmod(0o600)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
