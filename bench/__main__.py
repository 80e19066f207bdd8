"""`python -m bench` (make bench): start the mesh, run the benchmarks, print and keep the figures.

The servers start as `make infra-up` starts them; the bench then runs its own
service instances (2 of each it uses, on free ports, registered in Consul so
the gateway spreads load over them) and stops them at the end. Figures go to
stdout as a Markdown table and to .run/bench/ as JSON and Markdown.
`BENCH_SCALE` (default 1) multiplies the population.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx

from bench import feed, leaderboard
from infra import config, lifecycle
from infra.mesh import Mesh
from infra.processes import wait_until

INSTANCES = {"user": 2, "feed": 2, "leaderboard": 2}
#: The gateway's rate limit would cap every figure at its rate; the bench lifts it, and
#: renders the usual config again when it is done.
UNLIMITED = {"ZENTRY_GATEWAY_RATE_LIMIT": "1000000", "ZENTRY_GATEWAY_RATE_BURST": "1000000"}


def main() -> int:
    settings = config.load()
    factor = float(os.environ.get("BENCH_SCALE", "1"))
    scale = feed.Scale.times(factor)
    lifecycle.up(settings, lifecycle.servers(settings))
    mesh = Mesh(settings)
    base = f"http://{settings.envoy.host}:{settings.envoy.gateway_port}"
    started = time.monotonic()
    try:
        mesh.start_feed(UNLIMITED)
        quiet = {"ZENTRY_LOG_LEVEL": "WARNING"}
        children = [
            mesh.start_service(name, 0, quiet)
            for name, count in INSTANCES.items()
            for _ in range(count)
        ]
        for child in children:
            mesh.wait_healthy(child)
        wait_until(
            lambda: httpx.get(f"{base}/.well-known/jwks.json", timeout=2).raise_for_status(),
            what="the gateway routing to the user service",
            timeout=30,
            log_file=settings.log_file("envoy"),
        )
        time.sleep(3)  # Envoy picks up every new instance (the endpoint feed polls Consul)
        feed_results, tokens, readers = feed.run(settings, base, mesh.env(), scale)
        results = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count()},
            "instances": _instances(settings),
            "feed": feed_results,
            "leaderboard": leaderboard.run(
                settings, base, tokens, readers, leaderboard.Scale.times(factor)
            ),
        }
        tokens.unlink(missing_ok=True)
    finally:
        mesh.stop_all()
        subprocess.run([sys.executable, "-m", "gateway", "render"], check=False)
    results["seconds"] = round(time.monotonic() - started, 1)
    table = report(results)
    print(table)
    out = settings.run_dir / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "bench.md").write_text(table + "\n")
    print(f"bench: figures in {out}/bench.json and bench.md")
    return 0


def _instances(settings) -> dict[str, int]:
    """Passing instances per service in Consul: the bench's, and any others running."""
    counts = {}
    for name in INSTANCES:
        url = f"{settings.consul.http_url}/v1/health/service/{name}?passing=true"
        counts[name] = len(httpx.get(url, timeout=5).json())
    return counts


def report(results: dict) -> str:
    f = results["feed"]
    reads = {(r["scenario"], r["concurrency"]): r for r in f["reads"]}
    lines = [
        f"## Zentry bench, {results['when']} ({results['machine']['cpus']} CPUs, "
        f"instances {results['instances']}, {results['seconds']} s)",
        "",
        f"Population: {f['population']['entries']} entries by "
        f"{f['scale']['authors']} authors + {f['scale']['celebrities']} celebrities; "
        f"{f['scale']['readers']} readers following {f['population']['follows_per_reader']} each; "
        f"{f['population']['events']} events consumed at {f['population']['events_per_s']}/s.",
        "",
        "| scenario | concurrency | req/s | p50 ms | p95 ms | p99 ms | errors | vs trivial |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (scenario, concurrency), r in reads.items():
        trivial = reads[("trivial RPC (GetJwks)", concurrency)]["rps"]
        lines.append(
            f"| {scenario} | {concurrency} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
            f"{r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | {r['rps'] / trivial:.0%} |"
        )
    fan = f["fanout"]
    memory = f["memory"]
    lines += [
        "",
        "| figure | value |",
        "|---|---|",
        f"| fan-out: entry event to all {fan['followers']} followers' timelines | "
        f"median {fan['median_s']} s (runs {fan['seconds']}) |",
        f"| same, author with 1 follower (Kafka + consumer floor) | "
        f"median {fan['one_follower_median_s']} s (runs {fan['one_follower_seconds']}) |",
        f"| Redis bytes per timeline item | {memory['bytes_per_item']} "
        f"({memory['items']} items in {memory['timelines']} timelines, {memory['encoding']}) |",
    ]
    lb = results["leaderboard"]
    ingestion = lb["ingestion"]
    lines += [
        f"| leaderboard ingestion: {ingestion['events']} events by {ingestion['users']} users, "
        f"one batch runner, topic to committed board | {ingestion['events_per_s']} events/s "
        f"({ingestion['of_target']:.0%} of the {ingestion['target_per_s']}/s target; "
        f"{ingestion['batches']} batches) |",
    ]
    for r in lb["queries"]:
        lines.append(
            f"| {r['scenario']} through Envoy, concurrency {r['concurrency']} | "
            f"{r['rps']:.0f} req/s, "
            f"p50 {r['p50_ms']:.2f} ms, p95 {r['p95_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
            f"{r['errors']} errors |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
