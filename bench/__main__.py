"""`python -m bench` (make bench): start the mesh, run the benchmarks, print and keep the figures.

The servers start as `make infra-up` starts them; the bench then runs its own
service instances (2 of each, infra.mesh.BENCH, on free ports, registered in
Consul so the gateway spreads load over them), measures once the gateway
routes to every one, and stops them at the end; then bench.tracing runs a
mesh for each way of tracing (off, 1 %, 100 %: the bench's own exports none),
and bench.watch one for the feed's streams. Every figure is
shown beside the limit of this machine measured in the same run
(bench.limits). Figures go to stdout as Markdown tables and to .run/bench/ as
JSON and Markdown. `BENCH_SCALE` (default 1) multiplies the population;
`BENCH_FANOUT=1000,10000,100000` sets the fan-out curve (the default stops at
10,000: 100,000 followers take about 15 minutes to follow and activate).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx

from bench import (
    analytics,
    checks,
    feed,
    feed_consumers,
    flood,
    funnels,
    leaderboard,
    limits,
    sleep,
    tracing,
    watch,
)
from bench.memory import PeakRss, rss_mib
from gateway.config import NO_CLIENT_LIMITS
from infra import config
from infra.mesh import BENCH, Mesh, running

#: The gateway's rate limit would cap every figure at its rate; the bench lifts it, and
#: renders the usual config again when it is done.
UNLIMITED = {
    "ZENTRY_GATEWAY_RATE_LIMIT": "1000000",
    "ZENTRY_GATEWAY_RATE_BURST": "1000000",
    "ZENTRY_GATEWAY_TRACE_COLLECTOR": "off",
    **NO_CLIENT_LIMITS,
}
#: Readers log in once and read for the whole run, which outlasts a 15-minute token. No
#: spans are exported (bench.tracing measures what they cost), as before tracing existed.
QUIET = {
    "ZENTRY_LOG_LEVEL": "WARNING",
    "ZENTRY_TOKEN_TTL": "14400",
    "OTEL_EXPORTER_ZIPKIN_ENDPOINT": "",
}


def main() -> int:
    settings = config.load()
    factor = float(os.environ.get("BENCH_SCALE", "1"))
    started = time.monotonic()
    try:
        with running(settings, BENCH, env=QUIET, gateway_env=UNLIMITED) as mesh:
            results = measure(settings, mesh, factor)
        # Meshes of its own, one for each mode, after the bench's.
        results["tracing"] = tracing.run(settings, 15 * factor, QUIET, UNLIMITED)
        results["watch"] = watch.run(settings, QUIET, UNLIMITED)
    finally:
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


def measure(settings, mesh: Mesh, factor: float) -> dict:
    """Every scenario against the running mesh, the flood last (it restarts the endpoint
    feed: the gateway's usual limits again)."""
    scale = feed.Scale.times(factor)
    base = mesh.gateway_url
    pids = {child.name: child.pid for child in mesh.instances}
    idle = {name: rss_mib(pid) for name, pid in pids.items()}
    user = next(c for c in mesh.instances if c.service == "user")
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "instances": _instances(settings),
        "limits": {
            "redis": limits.redis_rates(settings),
            "trivial_direct": limits.trivial_rpc_direct(
                settings,
                f"{settings.envoy.host}:{user.port}",
                scale.concurrencies,
                scale.seconds,
            ),
        },
    }
    with PeakRss(pids) as peak:
        results["feed"], tokens, readers = feed.run(settings, base, mesh.env(), scale)
        results["sleep"] = sleep.run(settings, base, tokens, scale.seconds, pids)
        results["feed_consumers"] = feed_consumers.run(
            settings, mesh.env(), feed_consumers.Scale.times(factor)
        )
        results["leaderboard"] = leaderboard.run(
            settings, base, tokens, readers, leaderboard.Scale.times(factor)
        )
        results["analytics"] = analytics.run(settings, base, analytics.Scale.times(factor))
        results["funnels"] = funnels.run(settings, funnels.Scale.times(factor))
    # The flood meets the gateway as the public does: per-client limits on again.
    mesh.restart_endpoint_feed()
    mesh.wait_gateway()
    users = {name: pid for name, pid in pids.items() if name.startswith("user-")}
    results["flood"] = flood.run(settings, base, users, flood.Scale.times(factor))
    results["memory"] = {"rss_idle_mib": idle, "rss_peak_mib": peak.peak}
    results["request_check"] = checks.run()
    tokens.unlink(missing_ok=True)
    return results


def _instances(settings) -> dict[str, int]:
    """Passing instances per service in Consul: the bench's, and any others running."""
    counts = {}
    for name in BENCH.api:
        url = f"{settings.consul.http_url}/v1/health/service/{name}?passing=true"
        counts[name] = len(httpx.get(url, timeout=5).json())
    return counts


def _row(r: dict, limit: dict | None, label: str) -> str:
    ratio = f"{r['rps'] / limit['rps']:.0%} of {label}" if limit and limit["rps"] else "(the limit)"
    return (
        f"| {r['scenario']} | {r['concurrency']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
        f"{r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | {ratio} |"
    )


def report(results: dict) -> str:
    """Every figure as Markdown, one section after another."""
    sections = (
        _heading,
        _limits_report,
        _requests_report,
        _night_cost_report,
        _celebrity_report,
        _fanout_report,
        _ingestion_report,
        _funnels_report,
        _memory_report,
    )
    lines = [line for section in sections for line in section(results)]
    lines += _flood_report(results["flood"]) + _tracing_report(results["tracing"])
    lines += watch.report(results["watch"])
    return "\n".join(lines + _check_report(results))


def _tracing_report(rows: list[dict]) -> list[str]:
    lines = [
        "",
        f"### What tracing costs, concurrency {tracing.CONCURRENCY} (bench.tracing: a mesh "
        "of one instance of each service for each mode)",
        "",
        "| tracing | scenario | requests | rps | p50 ms | p95 ms | CPU ms a request (all) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['tracing']} | {r['scenario']} | {r['requests']} | {r['rps']:.0f} | "
            f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['cpu_ms_per_request']} |"
        )
    return lines


def _heading(results: dict) -> list[str]:
    f = results["feed"]
    return [
        f"## Zentry bench, {results['when']} ({results['machine']['cpus']} CPUs, "
        f"instances {results['instances']}, {results['seconds']} s)",
        "",
        f"Population: {f['population']['entries']} entries by "
        f"{f['scale']['authors']} authors + {f['scale']['celebrities']} celebrities; "
        f"{f['scale']['readers']} readers following {f['population']['follows_per_reader']} each; "
        f"{f['population']['events']} events consumed at {f['population']['events_per_s']}/s.",
    ]


def _limits_report(results: dict) -> list[str]:
    redis = results["limits"]["redis"]
    lines = [
        "",
        "### Limits of this machine, measured in this run",
        "",
        "| limit | value |",
        "|---|---|",
    ]
    if "error" in redis:
        lines.append(f"| Redis (redis-benchmark) | {redis['error']} |")
    else:
        lines += [
            f"| Redis ZADD, concurrency 8 | {redis['zadd']['rps']} ops/s, "
            f"p50 {redis['zadd']['p50_ms']} ms |",
            f"| Redis ZREVRANGE (20 of 1000), concurrency 8 | "
            f"{redis['zrevrange_page']['rps']} ops/s, p50 {redis['zrevrange_page']['p50_ms']} ms |",
            f"| Redis ZADD, 100 to a round trip, concurrency 8 | "
            f"{redis['zadd_pipelined']['rps']} ops/s |",
        ]
    for name in ("leaderboard", "analytics"):
        part = results[name]["ingestion" if name == "leaderboard" else "rollup"]
        raw = part["raw_consume"]
        lines.append(
            f"| one plain Kafka consumer, no processing, {raw['messages']} {name} events "
            f"(6 partitions) | "
            f"{raw['per_s']} messages/s |"
        )
    return lines


def _requests_report(results: dict) -> list[str]:
    direct = {r["concurrency"]: r for r in results["limits"]["trivial_direct"]}
    reads = {(r["scenario"], r["concurrency"]): r for r in results["feed"]["reads"]}
    envoy = {c: r for (name, c), r in reads.items() if name.startswith("trivial")}
    lines = [
        "",
        "### Requests (the load generator is Go; 'errors' are non-2xx and are not in req/s; "
        "direct calls go to one of the two user instances, Envoy spreads over both)",
        "",
        "| scenario | concurrency | req/s | p50 ms | p95 ms | p99 ms | errors | vs limit |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, r in direct.items():
        lines.append(_row(r, None, ""))
        lines.append(_row(envoy[c], r, "direct"))
    for (name, c), r in reads.items():
        if not name.startswith("trivial"):
            lines.append(_row(r, envoy[c], "trivial via Envoy"))
    for r in results["sleep"]:
        lines.append(_row(r, envoy.get(r["concurrency"]), "trivial via Envoy"))
    for r in results["leaderboard"]["queries"]:
        lines.append(_row(r, envoy.get(r["concurrency"]), "trivial via Envoy"))
    intake = results["analytics"]["intake"]
    lines.append(
        _row(
            {**intake, "scenario": f"TrackEvents ({intake['batch']} events a call)"},
            envoy.get(intake["concurrency"]),
            "trivial via Envoy",
        )
    )
    return lines


def _celebrity_report(results: dict) -> list[str]:
    lines = [
        "",
        "### Feed read latency against followed celebrities (concurrency 1)",
        "",
        "| celebrities followed | req/s | p50 ms | p95 ms | p99 ms |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results["feed"]["celebrity_curve"]:
        lines.append(
            f"| {r['celebrities']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
            f"{r['p99_ms']:.2f} |"
        )
    return lines


def _fanout_report(results: dict) -> list[str]:
    fan = results["feed"]["fanout"]
    zadd = results["limits"]["redis"].get("zadd_pipelined", {}).get("rps")
    lines = [
        "",
        "### Fan-out: an entry's event until it is in every follower's timeline",
        "",
        "| followers | median s (3 runs) | followers/s | vs pipelined Redis ZADD |",
        "|---:|---:|---:|---:|",
    ]
    for r in fan["curve"]:
        ratio = f"{r['followers_per_s'] / zadd:.0%}" if zadd else "n/a"
        lines.append(
            f"| {r['followers']} | {r['median_s']} ({r['seconds']}) | {r['followers_per_s']} | "
            f"{ratio} |"
        )
    lines.append(
        f"| 1 (Kafka and consumer floor) | {fan['one_follower_median_s']} "
        f"({fan['one_follower_seconds']}) | | |"
    )
    return lines


def _ingestion_report(results: dict) -> list[str]:
    ingestion, rollup = results["leaderboard"]["ingestion"], results["analytics"]["rollup"]
    intake = results["analytics"]["intake"]
    return [
        "",
        "### Ingestion, from topic to committed read model",
        "",
        "| pipeline | events/s | vs one plain consumer |",
        "|---|---:|---:|",
        f"| leaderboard: {ingestion['events']} nights of {ingestion['users']} users, one batch "
        f"runner ({ingestion['of_target']:.0%} of the {ingestion['target_per_s']}/s target; "
        f"CPU ms an event: {_cpu(ingestion['cpu_ms_per_event'])}) | "
        f"{ingestion['events_per_s']} | {ingestion['of_raw_consume']:.1%} |",
        f"| the same, as many other nights, {ingestion['processes']} runner processes in the "
        f"group ({ingestion['processes_of_target']:.0%} of the target; CPU ms an event: "
        f"{_cpu(ingestion['processes_cpu_ms_per_event'])}) | "
        f"{ingestion['processes_events_per_s']} | |",
        f"| analytics rollup: {rollup['events']} events of {rollup['visitors']} visitors, one "
        f"batch runner (CPU ms an event: {_cpu(rollup['cpu_ms_per_event'])}) | "
        f"{rollup['events_per_s']} | {rollup['of_raw_consume']:.1%} |",
        f"| the same, as many other events, {rollup['processes']} runner processes in the group "
        f"(CPU ms an event: {_cpu(rollup['processes_cpu_ms_per_event'])}) | "
        f"{rollup['processes_events_per_s']} | |",
        *_feed_consumer_rows(results["feed_consumers"]),
        f"| TrackEvents accepted at the gateway, concurrency 8 | {intake['events_per_s']} | |",
        f"| the same, rolled up by the running consumers (until caught up, "
        f"{intake['rolled_up_after_s']} s after the load) | "
        f"{intake['live_rollup_events_per_s']} | |",
    ]


def _funnels_report(results: dict) -> list[str]:
    return funnels.report(results["funnels"])


def _feed_consumer_rows(part: dict) -> list[str]:
    scale = part["scale"]
    what = {
        "follows": f"feed graph: {part['follows']['events']} follows of {scale['readers']} "
        "active readers (each backfills a timeline), one runner",
        "nights": f"feed entries: {part['nights']['events']} nights of {scale['authors']} "
        "authors (each fanned out to its active followers), one runner",
        "replay": f"feed replay: {part['replay']['events']} events, both groups",
    }
    return [
        f"| {label} (CPU ms an event: {_cpu(part[phase]['cpu_ms_per_event'])}) | "
        f"{part[phase]['events_per_s']} | |"
        for phase, label in what.items()
    ]


def _cpu(per: dict[str, float]) -> str:
    return ", ".join(f"{name} {ms}" for name, ms in per.items())


def _night_cost_report(results: dict) -> list[str]:
    lines = [
        "",
        "### Sleep entry create: every consumer caught up, and the CPU a night cost",
        "",
        "| concurrency | nights | caught up after the load, s | CPU ms a night |",
        "|---:|---:|---:|---|",
    ]
    for r in results["sleep"]:
        lines.append(
            f"| {r['concurrency']} | {r['requests']} | {r['caught_up_after_s']} | "
            f"{_cpu(r['cpu_ms_per_night'])} |"
        )
    return lines


def _memory_report(results: dict) -> list[str]:
    memory = results["feed"]["memory"]
    rss = results["memory"]
    per_member = results["leaderboard"]["ingestion"]["redis_bytes_per_member"]
    lines = [
        "",
        "### Memory",
        "",
        f"Redis: {memory['bytes_per_item']} bytes per timeline item ({memory['items']} items in "
        f"{memory['timelines']} timelines, {memory['encoding']}); "
        f"{per_member} bytes per leaderboard member (all-time boards).",
        "",
        "| process | RSS idle MiB | RSS peak under load MiB |",
        "|---|---:|---:|",
    ]
    for name, idle in rss["rss_idle_mib"].items():
        lines.append(f"| {name} | {idle} | {rss['rss_peak_mib'].get(name)} |")
    return lines


def _check_report(results: dict) -> list[str]:
    lines = [
        "",
        "### The gateway's request check (gateway.body_check), timed alone in LuaJIT",
        "",
        "| request | body bytes | µs a request | MB/s |",
        "|---|---:|---:|---:|",
    ]
    for r in results["request_check"]:
        lines.append(
            f"| {r['scenario']} | {r['body_bytes']} | {r['us_per_request']} | "
            f"{r['mb_per_s'] or ''} |"
        )
    return lines


def _flood_report(f: dict) -> list[str]:
    quiet, flooded = f["quiet"], f["flooded"]
    peaks = ", ".join(f"{name} {mib} MiB" for name, mib in f["user_rss_peak_mib"].items())
    lines = [
        "",
        f"### A log-in flood from {f['addresses']} addresses ({f['concurrency']} at once, "
        f"{f['seconds']:.0f} s), and {f['ordinary_users']} ordinary users",
        "",
        "| ordinary users | log-in p50 ms | log-in p95 ms | feed read p50 ms | feed read p95 ms "
        "| failed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, r in (("alone", quiet), ("during the flood", flooded)):
        lines.append(
            f"| {label} | {r['log_in'].get('p50_ms')} | {r['log_in'].get('p95_ms')} | "
            f"{r['feed_read'].get('p50_ms')} | {r['feed_read'].get('p95_ms')} | {r['failed']} |"
        )
    answers = ", ".join(f"{code}: {n}" for code, n in f["flood_answers"].items())
    ratios = ", ".join(
        f"{call.replace('_', ' ')} {flooded[call]['p95_ms'] / quiet[call]['p95_ms']:.2f} times"
        for call in ("log_in", "feed_read")
        if flooded[call].get("p95_ms") and quiet[call].get("p95_ms")
    )
    lines += [
        "",
        f"p95 during the flood over p95 alone (the target is under 2): {ratios}.",
        f"Flood answers: {answers}. User service peak RSS: {peaks} "
        f"(limit {f['user_memory_limit_mib']} MiB each).",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
