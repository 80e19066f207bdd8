"""`python -m services.kit.healthcheck`: exit 0 when the local service answers SERVING.

The container image's HEALTHCHECK: it asks the standard gRPC health service
(grpc.health.v1) the same question Consul and Kubernetes ask. The address
defaults to this container's service port (ZENTRY_PORT, else 50051).

With ZENTRY_TLS_* set (mutual TLS, services.kit.tls) it asks over TLS with the
process's own certificate and expects the server's to name the same service
as ours (the first DNS name of our certificate; `--server-name` says another).
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.kit import tls as kit_tls
from services.kit.settings import ConfigError, Env, TlsFiles


def check(
    target: str,
    service: str = "",
    timeout: float = 2.0,
    tls: TlsFiles | None = None,
    server_name: str = "",
) -> str:
    """The serving status's name; raises grpc.RpcError when nothing healthy answers. With
    `tls`, over mutual TLS to a server whose certificate names `server_name`."""
    with kit_tls.channel(target, tls, server_name) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.kit.healthcheck", description=__doc__)
    parser.add_argument("--address", help="host:port (default 127.0.0.1:$ZENTRY_PORT)")
    parser.add_argument("--service", default="", help="a service name; empty means the server")
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument(
        "--server-name",
        default="",
        help="under mutual TLS: the name the server's certificate"
        " must carry (default: our own certificate's first DNS name)",
    )
    args = parser.parse_args(argv)
    try:
        target = args.address or f"127.0.0.1:{Env().port('PORT', 50051)}"
        tls = TlsFiles.load(Env())
        server_name = args.server_name or (kit_tls.own_name(tls) if tls else "")
    except ConfigError as error:
        print(f"healthcheck: {error}", file=sys.stderr)
        return 2
    try:
        status = check(target, args.service, args.timeout, tls, server_name)
    except grpc.RpcError as error:
        print(f"healthcheck: {target}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    print(f"healthcheck: {target}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
