"""Bad input and faults: `python -m infra` stops with one clear line, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from infra.processes import free_port


def run_infra(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with its own empty run directory, so it never touches the real servers."""
    environ = {**os.environ, "ZENTRY_RUN_DIR": str(tmp_path / "run"), **env}
    return subprocess.run(
        [sys.executable, "-m", "infra", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_a_port_taken_by_something_else_is_named_with_the_variable_to_change(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = run_infra("up", "redis", tmp_path=tmp_path, ZENTRY_REDIS_PORT=str(port))
    assert_one_clear_line(result, f"127.0.0.1:{port}", "ZENTRY_REDIS_PORT", "Redis")
    assert not (tmp_path / "run" / "pids" / "redis.json").exists()


def test_a_malformed_port_names_its_variable(tmp_path):
    result = run_infra("status", tmp_path=tmp_path, ZENTRY_KAFKA_PORT="90x2")
    assert_one_clear_line(result, "ZENTRY_KAFKA_PORT", "'90x2'")


def test_missing_java_is_reported_before_kafka_starts(tmp_path):
    result = run_infra(
        "up",
        "kafka",
        tmp_path=tmp_path,
        ZENTRY_JAVA="/nonexistent/java",
        ZENTRY_KAFKA_PORT=str(free_port()),
        ZENTRY_KAFKA_CONTROLLER_PORT=str(free_port()),
        ZENTRY_KAFKA_PROXIED_PORT=str(free_port()),
    )
    assert_one_clear_line(result, "Java 17", "ZENTRY_JAVA")


def test_missing_go_is_reported_when_consul_must_be_built(tmp_path):
    empty = tmp_path / "empty-path"
    empty.mkdir()
    result = run_infra(
        "install",
        "consul",
        tmp_path=tmp_path,
        PATH=str(empty),  # no consul on PATH, so it must be built
        ZENTRY_TOOLS_DIR=str(tmp_path / "tools"),
        ZENTRY_GO="/nonexistent/go",
    )
    assert_one_clear_line(result, "Go is needed", "ZENTRY_GO")


def test_an_unknown_server_is_refused(tmp_path):
    result = run_infra("up", "mongodb", tmp_path=tmp_path)
    assert_one_clear_line(result, "unknown server", "postgres")


def test_status_exits_3_when_a_server_is_down(tmp_path):
    result = run_infra("status", "redis", tmp_path=tmp_path, ZENTRY_REDIS_PORT=str(free_port()))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "not running" in result.stdout


def test_a_failed_maven_download_names_the_log_to_read(tmp_path):
    offline_mvn = tmp_path / "mvn-offline"
    offline_mvn.write_text(f'#!/bin/sh\nexec mvn -o -Dmaven.repo.local={tmp_path}/m2 "$@"\n')
    offline_mvn.chmod(0o755)
    result = run_infra(
        "install",
        "kafka",
        tmp_path=tmp_path,
        ZENTRY_TOOLS_DIR=str(tmp_path / "tools"),
        ZENTRY_MVN=str(offline_mvn),
    )
    assert_one_clear_line(result, "Maven could not fetch Apache Kafka", "setup-kafka.log")
    assert not list((tmp_path / "tools" / "kafka").glob("*/*"))  # nothing half-installed


def test_a_failed_go_build_names_the_log_to_read(tmp_path):
    result = run_infra(
        "install",
        "grpcurl",
        tmp_path=tmp_path,
        ZENTRY_TOOLS_DIR=str(tmp_path / "tools"),
        GOPROXY="off",  # no module can be fetched, as when the proxy is unreachable
        GOMODCACHE=str(tmp_path / "gomod"),
        GOCACHE=str(tmp_path / "gocache"),
    )
    assert_one_clear_line(
        result, "go build of github.com/fullstorydev/grpcurl", "setup-grpcurl.log"
    )
    assert not (tmp_path / "tools" / "bin" / "grpcurl").exists()
