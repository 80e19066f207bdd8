"""`python -m gateway`: write Envoy's config, and feed it endpoints from Consul.

render [--out DIR]        bootstrap, LDS and CDS (and empty EDS files); --out writes
                          them to DIR instead, naming the configured in-place paths
feed [--endpoints-only]   render, then follow Consul until SIGTERM/SIGINT; with
                          --endpoints-only, only EDS files (the config is mounted)
seed-endpoints            an empty EDS file per upstream that has none, then exit
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from gateway.config import GatewaySettings
from gateway.endpoints import feed
from gateway.render import render, seed_endpoints
from services.kit import logs
from services.kit.settings import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["render", "feed", "seed-endpoints"])
    parser.add_argument("--out", type=Path, help="render: write the files here")
    parser.add_argument("--endpoints-only", action="store_true", help="feed: only EDS files")
    args = parser.parse_args(argv)
    try:
        settings = GatewaySettings.load()
    except ConfigError as error:
        print(f"gateway: {error}", file=sys.stderr)
        return 1
    try:
        if args.command == "render":
            upstreams = render(settings, args.out)
            print(
                f"gateway: config for {', '.join(upstreams)} in {args.out or settings.config_dir}"
            )
            return 0
        if args.command == "seed-endpoints" or args.endpoints_only:
            upstreams = seed_endpoints(settings)
        else:
            upstreams = render(settings)
    except FileNotFoundError as error:
        print(f"gateway: {error}", file=sys.stderr)
        return 1
    if args.command == "seed-endpoints":
        print(f"gateway: endpoint files for {', '.join(upstreams)} in {settings.eds_dir}")
        return 0
    logs.configure("gateway-feed", "gateway-feed")
    asyncio.run(_feed_until_signal(settings, upstreams))
    return 0


async def _feed_until_signal(settings: GatewaySettings, upstreams: list[str]) -> None:
    task = asyncio.create_task(feed(settings, upstreams))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


if __name__ == "__main__":
    sys.exit(main())
