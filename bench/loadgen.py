"""The Go load generator (bench/loadgen-go): built on first use, run with bounds, JSON back."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from infra.config import Settings

SOURCE = Path(__file__).parent / "loadgen-go"


def binary(settings: Settings) -> Path:
    """Build .tools/bin/zentry-loadgen when it is missing or older than its source."""
    out = settings.tools_dir / "bin" / "zentry-loadgen"
    newest = max(p.stat().st_mtime for p in SOURCE.iterdir())
    if not out.exists() or out.stat().st_mtime < newest:
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [settings.go, "build", "-trimpath", "-o", str(out), "."],
            cwd=SOURCE,
            check=True,
            env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"},
        )
    return out


def run(
    settings: Settings,
    url: str = "",
    *,
    concurrency: int,
    seconds: float,
    max_requests: int,
    tokens: Path | None = None,
    method: str = "GET",
    body: Path | None = None,
    headers: dict[str, str] | None = None,
    grpc: tuple[str, str] | None = None,
    origin: str = "",
    sources: list[str] | None = None,
    rate: float = 0,
    nice: int = 0,
) -> dict:
    """Sends to `url` (or calls `grpc` = (host:port, method)) at `concurrency` for `seconds`,
    at most `max_requests`; the tool's JSON. `body` is a template (bench/loadgen-go/main.go);
    `sources` are local addresses the workers send from, in turn; `rate` caps requests a
    second; `nice` lowers the generator's CPU priority (see bench.flood)."""
    argv = [
        str(binary(settings)),
        "-c", str(concurrency),
        "-d", f"{seconds}s",
        "-n", str(max_requests),
    ]  # fmt: skip
    if grpc is not None:
        argv += ["-grpc", grpc[0], "-rpc", grpc[1]]
    else:
        argv += ["-url", url, "-method", method]
    if tokens is not None:
        argv += ["-tokens", str(tokens)]
    if body is not None:
        argv += ["-body", str(body)]
    if origin:
        argv += ["-origin", origin]
    if sources:
        argv += ["-from", ",".join(sources)]
    if rate:
        argv += ["-rate", str(rate)]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    if nice:
        argv = ["nice", "-n", str(nice), *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True)
    return json.loads(done.stdout)
