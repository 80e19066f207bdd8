"""The log-in guard against a real Redis, and with Redis unreachable."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from infra.processes import free_port
from services.kit.errors import ResourceExhausted
from services.user.login_guard import LoginGuard
from tests.event_world import redis_url


@pytest.fixture
async def redis(settings):
    client = Redis.from_url(redis_url(settings, 14), socket_timeout=2)
    yield client
    await client.aclose()


def guard(redis: Redis, ceiling: int = 5) -> LoginGuard:
    return LoginGuard(
        redis, max_failures=3, lockout_seconds=60, account_ceiling=ceiling, account_burst=ceiling
    )


async def refused(guard: LoginGuard, account: str, address: str) -> bool:
    try:
        await guard.attempt(account, address)
    except ResourceExhausted:
        return True
    return False


async def test_attempts_are_counted_atomically_per_account_and_address(redis):
    account = str(uuid.uuid4())
    wide = guard(redis, ceiling=20)
    results = await asyncio.gather(*(refused(wide, account, "10.0.0.1") for _ in range(8)))
    assert sorted(results) == [False] * 3 + [True] * 5
    assert not await refused(wide, account, "10.0.0.2"), "another address may try"


async def test_attempts_from_many_addresses_meet_the_account_ceiling(redis):
    account = str(uuid.uuid4())
    results = [await refused(guard(redis), account, f"10.0.1.{n}") for n in range(7)]
    assert results == [False] * 5 + [True] * 2


async def test_a_successful_log_in_takes_its_attempt_back(redis):
    account, here = str(uuid.uuid4()), "10.0.2.1"
    for _ in range(3):
        await guard(redis).attempt(account, here)
        await guard(redis).succeeded(account, here)
    assert not await refused(guard(redis), account, here)


async def test_with_redis_unreachable_each_process_counts_itself():
    """Redis down used to let every attempt through."""
    down = Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5, socket_connect_timeout=0.5
    )
    alone = guard(down)
    try:
        results = [await refused(alone, "someone", "10.0.3.1") for _ in range(4)]
        assert results == [False] * 3 + [True]
        assert not await refused(alone, "someone", "10.0.3.2")
        await alone.succeeded("someone", "10.0.3.2")
    finally:
        await down.aclose()


async def test_the_account_bucket_refills_evenly_over_the_lockout():
    """Checked in memory (Redis unreachable), where the clock can be moved: the attempts a
    flood gets at one account over all addresses come a few at once, then one by one."""
    now = [0.0]
    down = Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5, socket_connect_timeout=0.5
    )
    guard = LoginGuard(
        down,
        max_failures=3,
        lockout_seconds=60,
        account_ceiling=6,
        account_burst=2,
        clock=lambda: now[0],
    )
    try:
        assert [await refused(guard, "acct", f"10.0.4.{n}") for n in range(3)] == [
            False,
            False,
            True,
        ]
        now[0] += 10  # 6 a minute: one every 10 seconds
        assert [await refused(guard, "acct", f"10.0.5.{n}") for n in range(2)] == [False, True]
    finally:
        await down.aclose()


async def test_an_attempt_no_password_was_checked_for_is_not_held_against_the_address(redis):
    """Found in review: during a flood on their account, an owner's refused tries counted
    against their own address, and locked it out for the whole lockout after the flood."""
    account, flood, owner = str(uuid.uuid4()), "10.0.6.1", "10.0.6.2"
    one = LoginGuard(redis, max_failures=3, lockout_seconds=60, account_ceiling=1, account_burst=1)
    await one.attempt(account, flood)  # the flood takes the account's only token
    for _ in range(5):
        with pytest.raises(ResourceExhausted, match="for this account; try again"):
            await one.attempt(account, owner)
    await one.succeeded(account, flood)  # the token comes back
    await one.attempt(account, owner)  # not "from your address": those five did not count
    await one.unchecked(account, owner)  # every hashing slot was busy: undone too
    await one.succeeded(account, owner)
