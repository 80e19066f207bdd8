"""A local certificate authority for mutual TLS between Envoy and the services (local runs
only: in Kubernetes cert-manager issues the same certificates, k8s/README.md).

`ensure_local_ca(folder)` keeps, under `.run/secrets/tls/`, a CA and one
certificate per service, one for the gateway (Envoy's client certificate) and
one for tools and tests, and returns a `LocalCa` that hands out the
ZENTRY_TLS_* (and the gateway's ZENTRY_GATEWAY_TLS_*) environment for each. It
is idempotent: a file is made again only when missing, not signed by the CA,
naming other names or within RENEW_WITHIN of its end (a new CA makes every
certificate again). Concurrent callers take turns on a lock file.

What a certificate names is what a caller checks (services.kit.tls): a
service's names the service (DNS `user`) and, for callers that dial the
loopback without naming a service, `localhost` and 127.0.0.1. The gateway's
and the tools' are client certificates: no service name, no server use.
"""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from infra.config import Settings
from services.kit.roster import SERVICES
from services.kit.settings import TlsFiles

#: Envoy's client certificate, and the one tools and tests present.
GATEWAY = "gateway"
TOOLS = "zentry-tools"
CA_DAYS = 3650
LEAF_DAYS = 365
#: A certificate this close to its end is made again.
RENEW_WITHIN = datetime.timedelta(days=30)
LOCAL_NAMES = ("localhost",)
LOCAL_IPS = ("127.0.0.1",)


@dataclass(frozen=True)
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


@dataclass(frozen=True)
class LocalCa:
    """The files of the local CA's folder, and the environment that points at them."""

    folder: Path

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.crt"

    def files(self, name: str) -> TlsFiles:
        """The certificate, key and CA of `name` (a service, GATEWAY or TOOLS)."""
        return TlsFiles(self.folder / f"{name}.crt", self.folder / f"{name}.key", self.ca_file)

    def env(self, name: str) -> dict[str, str]:
        """ZENTRY_TLS_*: what a service (or a tool) started as `name` reads."""
        return _env("TLS", self.files(name))

    def gateway_env(self) -> dict[str, str]:
        """ZENTRY_GATEWAY_TLS_*: Envoy's upstream TLS (gateway.config)."""
        return _env("GATEWAY_TLS", self.files(GATEWAY))


def _env(prefix: str, files: TlsFiles) -> dict[str, str]:
    return {
        f"ZENTRY_{prefix}_CERT_FILE": str(files.cert_file),
        f"ZENTRY_{prefix}_KEY_FILE": str(files.key_file),
        f"ZENTRY_{prefix}_CA_FILE": str(files.ca_file),
    }


def ensure_local_ca(folder: Path) -> LocalCa:
    """The CA and every certificate in `folder`, made or renewed as needed (module doc)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    local = LocalCa(folder)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ca = _load(local.ca_file, folder / "ca.key")
        if ca is None or _expiring(ca.cert) or not _is_ca(ca.cert):
            ca = make_ca("Zentry local CA")
            _write(ca, local.ca_file, folder / "ca.key")
        for name in SERVICES:
            _ensure(local.files(name), ca, name, (name, *LOCAL_NAMES), LOCAL_IPS, server=True)
        for name in (GATEWAY, TOOLS):
            _ensure(local.files(name), ca, name, (name,), (), server=False)
    return local


_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


def make_ca(common_name: str, days: int = CA_DAYS) -> Issued:
    """A self-signed CA that may sign leaf certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def issue(
    ca: Issued,
    common_name: str,
    dns_names: Iterable[str],
    ips: Iterable[str] = (),
    *,
    server: bool = True,
    days: int = LEAF_DAYS,
) -> Issued:
    """A leaf certificate signed by `ca`, naming `dns_names` and `ips`; a client certificate,
    and a server one too when `server`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH, *([ExtendedKeyUsageOID.SERVER_AUTH] * server)]
    names = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key, cert)


def write(issued: Issued, files: TlsFiles, ca: Issued) -> None:
    """Write a leaf's certificate and key, and the CA's certificate, as `files` names them."""
    _write(issued, files.cert_file, files.key_file)
    files.ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))


def _ensure(
    files: TlsFiles,
    ca: Issued,
    name: str,
    dns_names: tuple[str, ...],
    ips: tuple[str, ...],
    *,
    server: bool,
) -> None:
    current = _load(files.cert_file, files.key_file)
    if current is not None and _fits(current.cert, ca, dns_names, ips):
        return
    _write(issue(ca, name, dns_names, ips, server=server), files.cert_file, files.key_file)


def _fits(cert: x509.Certificate, ca: Issued, dns_names, ips) -> bool:
    try:
        cert.verify_directly_issued_by(ca.cert)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):  # make it again
        return False
    named = (
        list(names.get_values_for_type(x509.DNSName)),
        [str(ip) for ip in names.get_values_for_type(x509.IPAddress)],
    )
    return named == (list(dns_names), list(ips)) and not _expiring(cert)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _expiring(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - _now() < RENEW_WITHIN


def _load(cert_file: Path, key_file: Path) -> Issued | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    return Issued(key, cert)


def _write(issued: Issued, cert_file: Path, key_file: Path) -> None:
    """Key first, each by an atomic rename, so a reader never sees half a file."""
    key = issued.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _atomic(key_file, key, 0o600)
    _atomic(cert_file, issued.cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _atomic(path: Path, data: bytes, mode: int) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(temp, mode)
    os.replace(temp, path)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def local_ca(settings: Settings) -> LocalCa:
    """The local CA of `settings`' run folder (`.run/secrets/tls/`), made or renewed."""
    return ensure_local_ca(settings.run_dir / "secrets" / "tls")


def tls_wanted(environ: Mapping[str, str]) -> bool:
    """ZENTRY_TLS=1 (or true, yes, on): `make dev` runs the mesh with mutual TLS."""
    return environ.get("ZENTRY_TLS", "").strip().lower() in ("1", "true", "yes", "on")
