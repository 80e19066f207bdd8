"""Access tokens: RS256 JWTs signed with the user service's private key.

The public half is published as a JWKS (GetJwks, /.well-known/jwks.json): the
gateway reads it there and every service verifies with the same key
(services.kit.auth). `kid` is the key's RFC 7638 thumbprint, so a rotated key
gets a new id by itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from services.kit.auth import ALGORITHM


class TokenIssuer:
    def __init__(self, private_key_pem: bytes, issuer: str, audience: str, ttl: timedelta):
        self._key = serialization.load_pem_private_key(private_key_pem, password=None)
        if not isinstance(self._key, rsa.RSAPrivateKey):
            raise ValueError("the token signing key must be an RSA private key")
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl
        public_jwk = json.loads(RSAAlgorithm.to_jwk(self._key.public_key()))
        self.kid = _thumbprint(public_jwk)
        self._jwks = {"keys": [{**public_jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}]}

    def issue(
        self,
        user_id: str,
        username: str,
        roles: Iterable[str] = (),
        now: datetime | None = None,
    ) -> tuple[str, datetime]:
        """A signed token for the user (and their roles) and the moment it expires."""
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
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})
        return token, expires.replace(microsecond=0)

    def jwks(self) -> dict:
        return self._jwks


def _thumbprint(jwk: dict) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order."""
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


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
