"""Schemathesis over every operation of the gateway's OpenAPI document, signed in as a real user.

Checks: no 5xx, every answer's status, content type, headers and body as the
document says, and every INVALID_ARGUMENT naming the field (fuzz_checks.py).
Not checked: `unsupported_method` (Envoy answers a method a path does not have
with 404, where the check wants 405), and the checks that need links between
operations or data the document cannot promise. Not fuzzed: WatchFeed, a stream
that lasts until its client leaves (tests/e2e/test_feed_watch.py checks it). `make test` runs
ZENTRY_FUZZ_EXAMPLES (20) cases per operation and phase with seed
ZENTRY_FUZZ_SEED (1); `make fuzz` runs 300 with a new seed each time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "bad_requests_name_the_field",
)


def test_every_operation_survives_the_fuzzer(gateway, new_account, settings):
    me = new_account()
    report = settings.run_dir / "fuzz" / "report.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{gateway}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        os.environ.get("ZENTRY_FUZZ_EXAMPLES", "20"),
        "--header",
        f"Authorization: {me.auth['Authorization']}",
        "--exclude-operation-id",
        "FeedService_WatchFeed",
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    seed = os.environ.get("ZENTRY_FUZZ_SEED", "1")
    if seed != "random":
        command += ["--seed", seed]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_checks"}
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    summary = run.stdout[run.stdout.rfind("SUMMARY") :] if "SUMMARY" in run.stdout else run.stdout
    print(summary)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
