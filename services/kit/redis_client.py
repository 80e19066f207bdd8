"""One way to open Redis: the primary itself, or whichever server the Sentinels call primary now.

Behind Sentinels (ZENTRY_REDIS_SENTINELS) the client asks them for the primary of
the master name on every new connection, so after a failover the next command
that finds its connection broken reconnects to the promoted replica. Either way
it logs in as the process's ACL user (services.kit.addresses.RedisAddress).

Replication is asynchronous: a primary that dies may take its last writes with it,
and the replica promoted in its place never had them. A read model that must not
lose a write it has acknowledged (a consumer about to commit its offsets) calls
`durable` first: with ZENTRY_REDIS_MIN_REPLICAS set, it returns only once that
many replicas hold every write made before it, and raises otherwise, so the
consumer retries rather than commit what a failover could lose.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from services.kit.addresses import RedisAddress

#: How long `durable` waits for the replicas (WAIT's timeout), in milliseconds.
REPLICATION_TIMEOUT_MS = 1000


class NotReplicated(RedisError):
    """Fewer replicas than ZENTRY_REDIS_MIN_REPLICAS acknowledged the writes in time."""


def primary(redis: Redis) -> object:
    """Which server the client takes for the primary now (behind Sentinels, its address as
    last asked of them; else always the same): `durable` compares it before and after."""
    return getattr(redis.connection_pool, "master_address", None)


async def durable(redis: Redis, probe_key: str, since: object) -> None:
    """Return once the client's `min_replicas` (set by `connect`) hold every write this
    process made since `primary(redis)` was `since`; raises NotReplicated, a RedisError,
    when they do not, or when the client has moved to another primary meanwhile (the one
    it wrote to may have died with the writes: they must be made again).

    WAIT counts a connection's own writes, and a pool has many connections, so this
    writes `probe_key` (one of the caller's own keys) and waits for that on the same
    connection: the replicas apply the primary's writes in order, so acknowledging it
    acknowledges everything before it, on that primary."""
    wanted = getattr(redis, "min_replicas", 0)
    if not wanted:
        return
    async with redis.pipeline(transaction=False) as pipe:
        pipe.incr(probe_key)
        pipe.execute_command("WAIT", wanted, REPLICATION_TIMEOUT_MS)
        _, acknowledged = await pipe.execute()
    if since is not None and primary(redis) != since:
        raise NotReplicated(f"the primary changed from {since} to {primary(redis)} meanwhile")
    if acknowledged < wanted:
        raise NotReplicated(
            f"{acknowledged} of the {wanted} replicas wanted hold the writes after "
            f"{REPLICATION_TIMEOUT_MS} ms"
        )


def connect(address: RedisAddress | str, *, db: int = 0, **options: Any) -> Redis:
    """An asyncio client of `address` (or of a redis:// URL, as tests and benches have);
    `options` as redis-py's (timeouts...)."""
    if isinstance(address, str):
        return Redis.from_url(address, **options)
    client = _client(address, db, options)
    client.min_replicas = address.min_replicas
    return client


def _client(address: RedisAddress, db: int, options: dict[str, Any]) -> Redis:
    if not address.sentinels:
        return Redis.from_url(address.url(db), **options)
    timeouts = {
        k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")
    }
    sentinels = Sentinel(
        list(address.sentinels),
        sentinel_kwargs={
            **timeouts,
            "username": address.sentinel_username or None,
            "password": address.sentinel_password or None,
        },
    )
    return sentinels.master_for(
        address.sentinel_master,
        redis_class=Redis,
        db=db,
        username=address.username,
        password=address.password,
        **options,
    )
