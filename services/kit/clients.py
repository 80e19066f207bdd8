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
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from services.kit.interceptors import Around, metadata_value
from services.kit.settings import ConfigError

CLIENT_ADDRESS_HEADER = "x-zentry-client-address"
CLIENT_USER_AGENT_HEADER = "x-zentry-user-agent"
GATEWAY_SECRET_HEADER = "x-zentry-gateway-secret"
WARN_EVERY = 60.0  # seconds between warnings of a wrong secret

_log = logging.getLogger(__name__)

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
    """Notes, for `client_of`, whether a call carries the gateway's secret; warns (once a
    minute at most) when calls carry another, as a gateway with the wrong secret would."""

    def __init__(self, secret: str, clock=time.monotonic):
        self._secret = secret.encode()
        self._clock = clock
        self._warned = -WARN_EVERY

    @classmethod
    def from_file(cls, path: Path | None) -> GatewayTrust:
        """No file: no call is the gateway's (its headers are never believed). The gateway
        sends the file's content as it is, so a secret with spaces or a newline around it
        would never match: ConfigError."""
        if path is None:
            return cls("")
        secret = path.read_text()
        if not secret or secret != secret.strip():
            raise ConfigError(
                f"{path}: the gateway secret must be one line of text with nothing around it "
                "(no newline at the end); the gateway sends it as it is"
            )
        return cls(secret)

    async def around(self, call, request, context, method):
        given = metadata_value(context, GATEWAY_SECRET_HEADER)
        trusted = bool(given) and bool(self._secret)
        trusted = trusted and hmac.compare_digest(given.encode(), self._secret)
        if given and not trusted and self._clock() - self._warned >= WARN_EVERY:
            self._warned = self._clock()
            _log.warning(
                "a call carries a gateway secret that is not this service's; its client "
                "headers are not believed (do the gateway and the services read the same "
                "secret?)"
            )
        _via_gateway.set(trusted)
        return await call(request, context)
