"""`python -m infra COMMAND [SERVER ...]`: install, start, stop and inspect the local servers.

`python -m infra dev` runs the whole mesh in the foreground (what `make dev` does);
`python -m infra k8s` renders and validates the Kubernetes manifests (`make k8s-validate`);
`python -m infra replay-feed`, `replay-leaderboard` and `replay-analytics` rebuild those read
models from Kafka.

`python -m infra status --mesh` adds the running mesh: instances and their
health, consumer lag, outbox backlogs, parked events (`make status`; infra.meshstatus).

Exit codes: 0 done, 1 a failure explained in one line on stderr, 3 (status
only) some server is not answering, or (with --mesh) something needs attention.
"""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import asdict

from infra import config, install, lifecycle, mesh, meshstatus
from infra.errors import InfraError
from services.kit.roster import REPLAYING


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `infra status | head` ends quietly
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="fetch or build the pinned tools").add_argument(
        "tools",
        nargs="*",
        help="debian, kafka, zipkin, consul, grpcurl, protoc-gen-openapi, kustomize, "
        "prometheus-crds, cert-manager-crds, cloudnative-pg-crds, strimzi-crds, toxiproxy, "
        "envoy, buf, swagger-ui, web (default: all)",
    )
    for name, text in [
        ("up", "start the servers and wait until they are ready"),
        ("down", "stop the servers this checkout started; data stays"),
        ("status", "show what runs, where, and its log"),
    ]:
        commands.add_parser(name, help=text).add_argument(
            "servers",
            nargs="*",
            help="postgres, redis, kafka, consul, zipkin, envoy (default: all)",
        )
    mesh_options = commands.choices["status"]
    mesh_options.add_argument(
        "--mesh",
        action="store_true",
        help="then the running mesh: instances in Consul and their health, consumer lag, "
        "outbox backlogs, parked events; exit 3 if any needs attention, 1 if a server "
        "cannot be read",
    )
    mesh_options.add_argument(
        "--json", action="store_true", help="with --mesh: as JSON, for scripts"
    )
    mesh_options.add_argument(
        "--max-lag",
        type=int,
        default=meshstatus.Thresholds.max_lag,
        metavar="EVENTS",
        help="with --mesh: the lag (a group's, on one topic) that needs attention "
        "(default %(default)s)",
    )
    commands.add_parser("reset", help="stop our servers and delete .run/ (all local data)")
    commands.add_parser("dev", help="servers, every service and the gateway, until Ctrl-C")
    commands.add_parser("k8s", help="render every k8s/ overlay and validate it offline")
    for name in REPLAYING:
        commands.add_parser(
            f"replay-{name}",
            help=f"rebuild the {name}'s read models from Kafka (consumers stopped)",
        )
    args = parser.parse_args(argv)
    if args.command == "status" and args.json and not args.mesh:
        parser.error("status --json goes with --mesh")

    try:
        settings = config.load()
        if args.command == "install":
            install.install(settings, args.tools)
        elif args.command == "up":
            lifecycle.up(settings, lifecycle.servers(settings, args.servers))
        elif args.command == "down":
            lifecycle.down(settings, lifecycle.servers(settings, args.servers))
        elif args.command == "status":
            statuses = lifecycle.status(lifecycle.servers(settings, args.servers))
            servers_up = all(s.state in ("running", "external") for s in statuses)
            if args.mesh:
                return _mesh_status(settings, statuses, servers_up, args)
            for status in statuses:
                print(status.line())
            return 0 if servers_up else 3
        elif args.command == "reset":
            lifecycle.reset(settings)
        elif args.command == "dev":
            return mesh.run_dev(settings)
        elif args.command == "k8s":
            from infra import k8s  # kubernetes-validate loads its schemas slowly

            return k8s.validate_all(settings)
        elif args.command.startswith("replay-"):
            return mesh.run_module(settings, f"services.{args.command[7:]}.replay")
    except InfraError as exc:
        print(f"infra {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"infra {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


def _mesh_status(settings, statuses, servers_up: bool, args) -> int:
    """`status --mesh`: the servers' lines, then the mesh's tables (infra.meshstatus), and
    one line on stderr per server that could not be read."""
    limits = meshstatus.Thresholds(max_lag=args.max_lag)
    found = meshstatus.collect(settings)
    if args.json:
        print(meshstatus.as_json(found, limits, servers=[asdict(s) for s in statuses]))
    else:
        print("\n".join(status.line() for status in statuses), end="\n\n")
        print(meshstatus.render(found, limits), flush=True)
    for line in found.unreachable:
        print(f"infra status: {line}", file=sys.stderr)
    return meshstatus.exit_code(found, limits) or (0 if servers_up else 3)


if __name__ == "__main__":
    sys.exit(main())
