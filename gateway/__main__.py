"""`python -m gateway render|feed`: write Envoy's config, or also run the endpoint feed.

`feed` renders first, then follows Consul until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from gateway.config import GatewaySettings
from gateway.endpoints import feed
from gateway.render import render
from infra import config as infra_config
from services.kit import logs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("command", choices=["render", "feed"])
    args = parser.parse_args(argv)
    settings = GatewaySettings.load(infra_config.load())
    try:
        upstreams = render(settings)
    except FileNotFoundError as error:
        print(f"gateway: {error}", file=sys.stderr)
        return 1
    if args.command == "render":
        print(f"gateway: config for {', '.join(upstreams)} in {settings.config_dir}")
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
