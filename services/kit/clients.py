"""Who is on the other end of a call: the client's address and user agent.

Behind the gateway, the peer of a call is Envoy; the gateway tells the
client's own address and user agent in headers it sets from the connection
(`x-zentry-client-address`, `x-zentry-user-agent`), which a client cannot
forge through it. Anyone who reaches a service's port directly could send
them too, so they are believed only beside the gateway's secret
(`x-zentry-gateway-secret`, ZENTRY_GATEWAY_SECRET_FILE), which the gateway
adds to every request it forwards (`GatewayTrust` checks it). Any other call
(grpcurl, another service) is known by its peer address and its own user agent.
"""

from __future__ import annotations

import contextvars
import hmac
from dataclasses import dataclass
from pathlib import Path

import grpc

from services.kit.interceptors import Around, metadata_value

CLIENT_ADDRESS_HEADER = "x-zentry-client-address"
CLIENT_USER_AGENT_HEADER = "x-zentry-user-agent"
GATEWAY_SECRET_HEADER = "x-zentry-gateway-secret"

_via_gateway: contextvars.ContextVar[bool] = contextvars.ContextVar("via_gateway", default=False)


@dataclass(frozen=True)
class Client:
    address: str
    user_agent: str


def client_of(context: grpc.aio.ServicerContext) -> Client:
    """The calling client, as the gateway (if it is the gateway) or the connection tells it."""
    peer = context.peer() or ""  # "ipv4:127.0.0.1:5555", "ipv6:[::1]:5555"
    told = _via_gateway.get()
    return Client(
        address=(told and metadata_value(context, CLIENT_ADDRESS_HEADER))
        or peer.partition(":")[2].rsplit(":", 1)[0].strip("[]"),
        user_agent=(told and metadata_value(context, CLIENT_USER_AGENT_HEADER))
        or metadata_value(context, "user-agent")
        or "",
    )


class GatewayTrust(Around):
    """Notes, for `client_of`, whether a call carries the gateway's secret."""

    def __init__(self, secret: str):
        self._secret = secret.encode()

    @classmethod
    def from_file(cls, path: Path | None) -> GatewayTrust:
        """No file: no call is the gateway's (its headers are never believed)."""
        return cls(path.read_text().strip() if path else "")

    async def around(self, call, request, context, method):
        given = (metadata_value(context, GATEWAY_SECRET_HEADER) or "").encode()
        _via_gateway.set(bool(self._secret) and hmac.compare_digest(given, self._secret))
        return await call(request, context)
