"""`python -m services.kit.healthcheck`: exit 0 when the local service answers SERVING.

The container image's HEALTHCHECK: it asks the standard gRPC health service
(grpc.health.v1) the same question Consul and Kubernetes ask. The address
defaults to this container's service port (ZENTRY_PORT, else 50051).
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.kit.settings import ConfigError, Env


def check(target: str, service: str = "", timeout: float = 2.0) -> str:
    """The serving status's name; raises grpc.RpcError when nothing healthy answers."""
    with grpc.insecure_channel(target) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.kit.healthcheck", description=__doc__)
    parser.add_argument("--address", help="host:port (default 127.0.0.1:$ZENTRY_PORT)")
    parser.add_argument("--service", default="", help="a service name; empty means the server")
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    try:
        target = args.address or f"127.0.0.1:{Env().port('PORT', 50051)}"
    except ConfigError as error:
        print(f"healthcheck: {error}", file=sys.stderr)
        return 2
    try:
        status = check(target, args.service, args.timeout)
    except grpc.RpcError as error:
        print(f"healthcheck: {target}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    print(f"healthcheck: {target}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
