"""Mutual TLS for the mesh's gRPC (ZENTRY_TLS_*, services.kit.settings.TlsFiles).

A server serves TLS only and requires a client certificate signed by the CA;
a client presents its own certificate and checks the server's against the CA
*and its name*. Callers reach instances at the addresses Consul hands out
(IPs), so the name checked is not the address but the service's name
(`grpc.ssl_target_name_override`): a service's certificate names it (SAN DNS
`user`), and a caller of `user` refuses an instance that presents any other
certificate of the CA, such as the feed's. That is what stops a pod holding
one service's certificate from registering in Consul as another service and
being sent its calls.

The server rereads the three files when one changes (at the next handshake),
so a certificate renewed in place (cert-manager, `infra` locally) is served
without a restart; a client's channels take new files when they are made
(discovery.Balancer remakes its channels when the files change).
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Sequence

import grpc

from services.kit.settings import ConfigError, TlsFiles

_log = logging.getLogger(__name__)

#: The channel option that makes the client check the server's certificate for a name of
#: our choosing instead of the host it dials (an IP from Consul).
NAME_OVERRIDE = "grpc.ssl_target_name_override"


def _stamp(files: TlsFiles) -> tuple[int, ...]:
    return tuple(
        os.stat(path).st_mtime_ns for path in (files.cert_file, files.key_file, files.ca_file)
    )


def _read(files: TlsFiles) -> tuple[bytes, bytes, bytes]:
    """(certificate chain, key, CA), checked to belong together; raises ConfigError."""
    try:
        ssl.create_default_context().load_cert_chain(files.cert_file, files.key_file)
        ca = files.ca_file.read_bytes()
        ssl.create_default_context(cadata=ca.decode())
    except (OSError, ssl.SSLError, ValueError) as error:
        raise ConfigError(
            f"mutual TLS: {files.cert_file}, {files.key_file} and {files.ca_file} must be a "
            f"PEM certificate, its private key and a PEM CA certificate: {error}"
        ) from None
    return files.cert_file.read_bytes(), files.key_file.read_bytes(), ca


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """TLS only, a client certificate from the CA required; reloaded when the files change.

    Raises ConfigError if the files are not a certificate, its key and a CA.
    """
    cert, key, ca = _read(files)
    stamp = [_stamp(files)]

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC before each handshake: None keeps the configuration in use.
        try:
            now = _stamp(files)
            if now == stamp[0]:
                return None
            cert, key, ca = _read(files)
        except (OSError, ConfigError) as error:  # half-replaced: try again next handshake
            _log.warning("mutual TLS files changed but cannot be read yet: %s", error)
            return None
        stamp[0] = now
        _log.info("mutual TLS: serving the renewed certificate %s", files.cert_file)
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    return grpc.dynamic_ssl_server_credentials(
        grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca),
        fetch,
        require_client_authentication=True,
    )


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    """Our certificate to present, and the CA the server's must come from."""
    cert, key, ca = _read(files)
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


def version(files: TlsFiles | None) -> tuple[int, ...]:
    """Changes when a file does (a renewal); () without TLS or while a file is missing."""
    if files is None:
        return ()
    try:
        return _stamp(files)
    except OSError:
        return ()


def aio_channel(
    target: str,
    tls: TlsFiles | None,
    name: str,
    *,
    interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
    options: Sequence[tuple[str, object]] = (),
) -> grpc.aio.Channel:
    """An asyncio channel to `target`, an instance of the service `name`: with `tls`, over
    mutual TLS and only to a server whose certificate names `name`; else plaintext."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=list(options), interceptors=interceptors)
    return grpc.aio.secure_channel(
        target,
        channel_credentials(tls),
        options=[*options, (NAME_OVERRIDE, name)],
        interceptors=interceptors,
    )


def channel(target: str, tls: TlsFiles | None, name: str) -> grpc.Channel:
    """`aio_channel`'s blocking twin, for tools and tests."""
    if tls is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, channel_credentials(tls), options=[(NAME_OVERRIDE, name)])


def own_name(files: TlsFiles) -> str:
    """The first DNS name of our own certificate: the service a process is, which its own
    health check expects to find answering (services.kit.healthcheck)."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    dns = names.get_values_for_type(x509.DNSName) if names else []
    if not dns:
        raise ConfigError(f"{files.cert_file} names no DNS name (subject alternative name)")
    return dns[0]
