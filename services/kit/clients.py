"""Who is on the other end of a call: the client's address and user agent.

Behind the gateway, the peer of a call is Envoy; the gateway tells the
client's own address and user agent in headers it sets from the connection
(`x-zentry-client-address`, `x-zentry-user-agent`), which a client cannot
forge through it. A direct gRPC call (grpcurl, another service) is known by
its peer address and its own user agent.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from services.kit.interceptors import metadata_value

CLIENT_ADDRESS_HEADER = "x-zentry-client-address"
CLIENT_USER_AGENT_HEADER = "x-zentry-user-agent"


@dataclass(frozen=True)
class Client:
    address: str
    user_agent: str


def client_of(context: grpc.aio.ServicerContext) -> Client:
    """The calling client, as the gateway or the connection tells it."""
    peer = context.peer() or ""  # "ipv4:127.0.0.1:5555", "ipv6:[::1]:5555"
    return Client(
        address=metadata_value(context, CLIENT_ADDRESS_HEADER)
        or peer.partition(":")[2].rsplit(":", 1)[0].strip("[]"),
        user_agent=metadata_value(context, CLIENT_USER_AGENT_HEADER)
        or metadata_value(context, "user-agent")
        or "",
    )
