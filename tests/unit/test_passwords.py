"""Password hashing within its memory budget (argon2 for real, no servers)."""

from __future__ import annotations

import asyncio

import pytest
from argon2 import PasswordHasher

from services.kit.errors import ResourceExhausted
from services.user.passwords import Passwords

SMALL = PasswordHasher(memory_cost=8 * 1024, time_cost=2)  # 8 MiB a hash, fast enough here


async def test_the_budget_decides_how_many_hash_at_once():
    assert Passwords(256, 1.0).slots == 4  # 64 MiB each, argon2's default
    assert Passwords(16, 1.0, SMALL).slots == 2


async def test_a_flood_beyond_the_slots_is_refused_quickly_instead_of_queued():
    passwords = Passwords(8, 0.0, SMALL)  # one slot, no waiting
    results = await asyncio.gather(
        *(passwords.hash(f"password-{n}!") for n in range(6)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, ResourceExhausted)]
    assert len(refused) == 5 and "try again" in refused[0].message
    passwords.close()


async def test_hashes_check_and_an_absent_hash_never_matches():
    passwords = Passwords(16, 5.0, SMALL)
    hashed = await passwords.hash("sleep-well-42")
    assert await passwords.matches(hashed, "sleep-well-42", "ada")
    assert not await passwords.matches(hashed, "sleep-well-43", "ada")
    assert not await passwords.matches(None, "not a real password 0", "nobody")
    passwords.close()


@pytest.mark.parametrize("memory_mib", [64, 100])
async def test_a_budget_below_two_hashes_still_hashes_one_at_a_time(memory_mib):
    assert Passwords(memory_mib, 1.0).slots == 1


async def test_a_made_up_name_costs_no_hash_and_is_refused_alike_when_busy():
    """A flood of random names would otherwise cost a hash each (64 MiB, tens of ms); and
    were they never refused, a busy service's 429s would tell which names are accounts."""
    passwords = Passwords(8, 5.0, SMALL)  # one slot
    guesses = (passwords.matches(None, "guess-1", "nobody") for _ in range(20))
    answers = await asyncio.gather(passwords.hash("sleep-well-42"), *guesses)
    assert answers[1:] == [False] * 20, "each holds the slot only a moment"
    passwords.close()

    busy = Passwords(8, 0.0, SMALL)  # one slot, no waiting for it
    real = asyncio.create_task(busy.hash("sleep-well-42"))
    await asyncio.sleep(0)  # the real hash holds the only slot
    with pytest.raises(ResourceExhausted):
        await busy.matches(None, "guess-1", "nobody")
    await real
    busy.close()


async def test_a_flood_at_one_account_holds_one_slot_and_leaves_the_others():
    """Found by the flood bench: an attacked account's checks took every slot, and an
    ordinary user's log-in waited behind them."""
    passwords = Passwords(16, 0.0, SMALL)  # two slots, no waiting
    hashed = await passwords.hash("sleep-well-42")
    flood = [passwords.matches(hashed, "wrong-1", "target") for _ in range(5)]
    ordinary = passwords.matches(hashed, "sleep-well-42", "ordinary")
    *attacked, mine = await asyncio.gather(*flood, ordinary, return_exceptions=True)
    assert mine is True, "the other slot was free for someone else"
    assert attacked.count(False) == 1, "one of the attacked account's checks at a time"
    assert all(isinstance(a, ResourceExhausted) for a in attacked if a is not False)
    assert passwords._turns == {}, "turns are forgotten once nobody waits"
    passwords.close()


async def test_a_hash_takes_one_lane_and_one_of_other_parameters_still_checks():
    """Four lanes (argon2-cffi's default) run four threads: on two cores, a flood's check
    beside an ordinary log-in doubled it, and a pod limited to one CPU would be throttled."""
    passwords = Passwords(256, 5.0)
    hashed = await passwords.hash("sleep-well-42")
    assert ",p=1$" in hashed and "m=65536,t=3" in hashed
    assert not passwords.outdated(hashed)
    older = PasswordHasher(parallelism=4).hash("sleep-well-42")
    assert passwords.outdated(older)
    assert await passwords.matches(older, "sleep-well-42", "ada")
    assert not await passwords.matches(older, "sleep-well-43", "ada")
    passwords.close()


async def test_a_rehash_never_waits_for_a_slot():
    """Found in review: the upgrade of an old hash at log-in waited for a slot like a
    sign-up, so a busy service kept a right log-in waiting for its upgrade."""
    busy = Passwords(8, 5.0, SMALL)  # one slot, a five-second wait for it
    real = asyncio.create_task(busy.hash("sleep-well-42"))
    await asyncio.sleep(0)  # the real hash holds the only slot
    assert await busy.rehash("sleep-well-42") is None, "refused at once, not after 5 s"
    await real
    assert (await busy.rehash("sleep-well-42")).startswith("$argon2id$")
    busy.close()
