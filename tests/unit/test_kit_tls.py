"""Mutual TLS settings (ZENTRY_TLS_*), the local CA's certificates, and a handshake in process."""

from __future__ import annotations

import datetime

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from infra import tls as local_tls
from services.kit import tls
from services.kit.settings import ConfigError, Env, ServiceSettings, TlsFiles

PARTS = ("CERT", "KEY", "CA")


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> local_tls.LocalCa:
    return local_tls.ensure_local_ca(tmp_path_factory.mktemp("tls"))


def service_env(tmp_path, **more: str) -> Env:
    key = tmp_path / "public.pem"
    key.write_text("-----BEGIN PUBLIC KEY-----\n")
    return Env({"ZENTRY_JWT_PUBLIC_KEY_FILE": str(key), **more})


def test_without_tls_settings_a_service_is_plaintext(tmp_path):
    assert ServiceSettings.load("user", 50051, service_env(tmp_path)).tls is None


def test_all_three_files_turn_mutual_tls_on(tmp_path, ca):
    settings = ServiceSettings.load("user", 50051, service_env(tmp_path, **ca.env("user")))
    assert settings.tls == ca.files("user")


@pytest.mark.parametrize("given", [("CERT",), ("KEY",), ("CERT", "KEY"), ("KEY", "CA")])
def test_some_but_not_all_is_an_error_naming_what_is_missing(tmp_path, ca, given):
    env = {k: v for k, v in ca.env("user").items() if k.split("_")[2] in given}
    with pytest.raises(ConfigError) as error:
        ServiceSettings.load("user", 50051, service_env(tmp_path, **env))
    missing = str(error.value).split(" must be set too")[0]  # what it names first
    for part in PARTS:
        assert (f"ZENTRY_TLS_{part}_FILE" in missing) == (part not in given), error.value


def test_a_missing_file_is_named(tmp_path, ca):
    env = {**ca.env("user"), "ZENTRY_TLS_KEY_FILE": str(tmp_path / "nothing.key")}
    with pytest.raises(ConfigError, match=r"ZENTRY_TLS_KEY_FILE names .* not a readable file"):
        ServiceSettings.load("user", 50051, service_env(tmp_path, **env))


def test_a_key_that_is_not_the_certificates_is_refused_at_start(ca):
    mixed = TlsFiles(ca.files("user").cert_file, ca.files("feed").key_file, ca.ca_file)
    with pytest.raises(ConfigError, match="mutual TLS"):
        tls.server_credentials(mixed)


def test_each_certificate_names_what_it_is(ca):
    for service in ("user", "sleep", "feed", "leaderboard", "analytics"):
        cert = x509.load_pem_x509_certificate(ca.files(service).cert_file.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [service, "localhost"]
        assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        assert tls.own_name(ca.files(service)) == service
    for client in (local_tls.GATEWAY, local_tls.TOOLS):
        cert = x509.load_pem_x509_certificate(ca.files(client).cert_file.read_bytes())
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH], "a client, never a server"
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [client]


def test_the_local_ca_is_idempotent_and_renews_what_is_missing_or_expiring(tmp_path, monkeypatch):
    folder = tmp_path / "tls"
    ca = local_tls.ensure_local_ca(folder)
    stamps = {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix in (".crt", ".key")}
    local_tls.ensure_local_ca(folder)
    assert stamps == {n: (folder / n).read_bytes() for n in stamps}, "nothing made again"

    ca.files("feed").cert_file.unlink()
    local_tls.ensure_local_ca(folder)
    assert ca.files("feed").cert_file.exists()
    assert ca.files("user").cert_file.read_bytes() == stamps["user.crt"], "the rest is kept"

    # A year on, every leaf is within RENEW_WITHIN of its end; the CA is not.
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=350)
    monkeypatch.setattr(local_tls, "_now", lambda: later)
    local_tls.ensure_local_ca(folder)
    assert ca.files("user").cert_file.read_bytes() != stamps["user.crt"]
    assert ca.ca_file.read_bytes() == stamps["ca.crt"]


def test_a_new_ca_makes_every_certificate_again(tmp_path):
    folder = tmp_path / "tls"
    ca = local_tls.ensure_local_ca(folder)
    before = ca.files("user").cert_file.read_bytes()
    ca.ca_file.unlink()
    local_tls.ensure_local_ca(folder)
    assert ca.files("user").cert_file.read_bytes() != before
    issued = x509.load_pem_x509_certificate(ca.files("user").cert_file.read_bytes())
    issued.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.ca_file.read_bytes()))


async def test_a_client_checks_the_name_of_the_service_it_calls_not_the_address(ca):
    """In process: a server with the feed's certificate, reached at 127.0.0.1 (which every
    local certificate names), is refused by a caller of `user` and served to one of `feed`."""
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_secure_port("127.0.0.1:0", tls.server_credentials(ca.files("feed")))
    await server.start()
    tools = ca.files(local_tls.TOOLS)
    try:
        for name, served in (("feed", True), ("user", False)):
            async with tls.aio_channel(f"127.0.0.1:{port}", tools, name) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                if served:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                    assert reply.status == health_pb2.HealthCheckResponse.SERVING
                else:
                    with pytest.raises(grpc.RpcError) as refused:
                        await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


async def test_a_server_takes_up_renewed_files_at_the_next_handshake(ca, tmp_path):
    """cert-manager (or infra) replaces the files in place: no restart needed."""
    files = TlsFiles(tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "ca.crt")
    user = ca.files("user")
    for source, target in (
        (user.cert_file, files.cert_file),
        (user.key_file, files.key_file),
        (user.ca_file, files.ca_file),
    ):
        target.write_bytes(source.read_bytes())
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_secure_port("127.0.0.1:0", tls.server_credentials(files))
    await server.start()
    tools = ca.files(local_tls.TOOLS)

    async def serves_as(name: str) -> bool:
        async with tls.aio_channel(f"127.0.0.1:{port}", tools, name) as channel:
            try:
                await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            except grpc.RpcError:
                return False
            return True

    try:
        assert await serves_as("user") and not await serves_as("sleep")
        renewed = ca.files("sleep")  # another certificate, to tell the two apart
        for source, target in (
            (renewed.key_file, files.key_file),
            (renewed.cert_file, files.cert_file),
        ):
            temp = target.with_suffix(".new")
            temp.write_bytes(source.read_bytes())
            temp.replace(target)
        assert await serves_as("sleep") and not await serves_as("user")
    finally:
        await server.stop(0)
