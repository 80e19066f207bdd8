"""What this machine allows, measured in the same run: each figure is shown beside its limit.

- Redis: ZADD and ZREVRANGE (a 20-item page of a 1000-item sorted set, like
  a timeline) with redis-benchmark at concurrency 8, pipelining off; and ZADD
  100 to a round trip, the fair limit for fan-out (500 ZADDs to a script call).
- Kafka: how fast one plain confluent-kafka consumer reads a topic (no
  processing), for the ingestion benchmarks' own topics and sizes.
- gRPC: a trivial RPC (GetJwks) straight to one user instance, beside the same
  through Envoy (in the feed benchmark's table).
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from bench import loadgen
from bench.scratch import BENCH_REDIS_DB
from infra.config import Settings
from services.kit.addresses import kafka_security

TIMELINE_ITEMS, PAGE = 1000, 20


def redis_rates(settings: Settings, requests: int = 200_000) -> dict:
    """redis-benchmark's requests/s and p50 for ZADD and a ZREVRANGE page."""
    tool = shutil.which("redis-benchmark")
    if tool is None:
        return {"error": "redis-benchmark is not installed (Debian's redis-tools)"}
    redis = settings.redis
    login = ["--user", redis.username, "-a", redis.password]  # the local administrator
    base = [tool, "-h", redis.host, "-p", str(redis.port), *login]
    base += ["--dbnum", str(BENCH_REDIS_DB), "-c", "8", "-n", str(requests), "--csv"]
    key = f"bench:limits:{uuid.uuid4().hex[:8]}"
    cli = [shutil.which("redis-cli") or "redis-cli", "-h", redis.host, "--no-auth-warning"]
    cli += ["-p", str(redis.port), *login, "-n", str(BENCH_REDIS_DB)]
    members = [x for i in range(TIMELINE_ITEMS) for x in (str(i), f"entry-{i:06d}")]
    subprocess.run([*cli, "ZADD", f"{key}:page", *members], check=True, capture_output=True)
    try:
        zadd = _bench(
            [*base, "-r", "1000000", "ZADD", f"{key}:zadd", "__rand_int__", "m:__rand_int__"]
        )
        page = _bench([*base, "ZREVRANGE", f"{key}:page", "0", str(PAGE - 1), "WITHSCORES"])
        # fan-out sends its ZADDs 500 to a script call: compare it with ZADDs sent in bulk
        piped = _bench(
            [
                *base,
                "-P",
                "100",
                "-r",
                "1000000",
                "ZADD",
                f"{key}:zadd",
                "__rand_int__",
                "m:__rand_int__",
            ]
        )
    finally:
        subprocess.run(
            [*cli, "DEL", f"{key}:page", f"{key}:zadd"], check=False, capture_output=True
        )
    return {"zadd": zadd, "zadd_pipelined": piped, "zrevrange_page": page, "concurrency": 8}


def _bench(argv: list[str]) -> dict:
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=300).stdout
    row = list(csv.DictReader(io.StringIO(out)))[-1]
    return {"rps": round(float(row["rps"])), "p50_ms": float(row["p50_latency_ms"])}


def raw_consume_rate(bootstrap: str, topic: str, expected: int) -> dict:
    """One consumer, no processing: messages/s reading `expected` messages of `topic`."""
    consumer = Consumer(
        {
            **kafka_security(),
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=15).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        read, started = 0, time.monotonic()
        while read < expected:
            read += sum(1 for m in consumer.consume(1000, 1.0) if not m.error())
            if time.monotonic() - started > 300:
                raise TimeoutError(f"read {read} of {expected} messages in 300 s")
        seconds = time.monotonic() - started
    finally:
        consumer.close()
    return {"messages": read, "seconds": round(seconds, 2), "per_s": round(read / seconds)}


def trivial_rpc_direct(
    settings: Settings, target: str, concurrencies, seconds: float
) -> list[dict]:
    """GetJwks over gRPC to one user instance, not through Envoy."""
    rows = []
    for concurrency in concurrencies:
        print(f"bench limits: trivial RPC direct at concurrency {concurrency}", flush=True)
        result = loadgen.run(
            settings,
            grpc=(target, "/zentry.user.v1.UserService/GetJwks"),
            concurrency=concurrency,
            seconds=seconds,
            max_requests=500_000,
        )
        rows.append({"scenario": "trivial RPC direct (gRPC, one instance)", **result})
    return rows
