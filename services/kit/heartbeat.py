"""An instance's own health check, reported to Consul: what replaces Consul's gRPC check
under mutual TLS (see services.kit.discovery).

Every INTERVAL seconds the instance asks its own gRPC port, at the address it
registered and over mutual TLS with its own certificate (checking that the
server's names its service), for the health of its instance id, the question
Consul's check would ask, and reports the answer to its TTL check. So a port
that stopped accepting, a certificate that no longer verifies, NOT_SERVING or a
hung process all turn the instance critical within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.kit import tls
from services.kit.discovery import Consul
from services.kit.settings import ConfigError, TlsFiles

_log = logging.getLogger(__name__)

#: Seconds between reports; discovery.CHECK_TTL allows a few to go missing.
INTERVAL = 1.0
TIMEOUT = 1.0


class Heartbeat:
    """Asks the instance's own port and reports to Consul until `stop()`; never raises."""

    def __init__(
        self, consul: Consul, service: str, instance_id: str, target: str, files: TlsFiles
    ):
        self._consul = consul
        self._service = service
        self._instance_id = instance_id
        self._target = target
        self._files = files
        self._stopped = asyncio.Event()

    async def check(self, channel: grpc.aio.Channel) -> tuple[bool, str]:
        """(passing, what was seen)."""
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=self._instance_id), timeout=TIMEOUT
            )
        except grpc.RpcError as error:
            return False, f"{self._target}: {error.code().name}: {error.details()}"
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return status == "SERVING", f"{self._target} (mutual TLS, as {self._service}): {status}"

    async def run(self) -> None:
        version, channel = None, None
        try:
            while not self._stopped.is_set():
                if tls.version(self._files) != version:  # renewed files: a new channel
                    if channel is not None:
                        await channel.close()
                        channel = None
                    try:
                        channel = tls.aio_channel(self._target, self._files, self._service)
                        version = tls.version(self._files)
                    except ConfigError as error:  # half-replaced files: next time
                        output = str(error)
                if channel is not None:
                    passing, output = await self.check(channel)
                else:
                    passing = False
                try:
                    await self._consul.report(self._instance_id, passing, output)
                except httpx.HTTPError as error:
                    _log.warning("could not report health to consul: %r", error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), INTERVAL)
        finally:
            if channel is not None:
                await channel.close()

    def stop(self) -> None:
        self._stopped.set()
