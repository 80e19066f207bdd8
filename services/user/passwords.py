"""Password hashing (argon2id) within a memory budget.

One argon2 hash takes `memory_cost` (64 MiB by default) while it runs. Hashes
run on a thread pool of their own, as many at once as the budget holds
(ZENTRY_PASSWORD_MEMORY_MIB over one hash's memory), so no flood of sign-ups
or log-ins makes the service take more. A call that finds every slot busy
waits at most `wait` seconds for one, then is refused with RESOURCE_EXHAUSTED
(429 at the gateway) instead of queueing without end.

A log-in under a name no account has is answered as late as a real check
would be (a wait as long as one of the latest real checks took, queueing
included), with no hash: made-up names, the cheapest flood there is, cost no
CPU or memory, and the time still tells nothing of which names exist.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.kit.errors import ResourceExhausted

BUSY = "Too many passwords are being checked right now; try again in a few seconds."
#: Real checks remembered to time the answers for names no account has.
RECENT = 64


class Passwords:
    def __init__(self, memory_mib: int, wait: float, hasher: PasswordHasher | None = None):
        self._hasher = hasher or PasswordHasher()
        self.slots = max(1, memory_mib * 1024 // self._hasher.memory_cost)
        self._free = asyncio.Semaphore(self.slots)
        self._pool = ThreadPoolExecutor(self.slots, thread_name_prefix="argon2")
        self._wait = wait
        # How long the latest real checks took, queueing included; one at first.
        started = time.monotonic()
        self._hasher.verify(self._hasher.hash("a password 0"), "a password 0")
        self._recent: deque[float] = deque([(time.monotonic() - started) / 2], maxlen=RECENT)

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def matches(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` is the one hashed; a real check's time without a hash (None).

        Without a hash, a slot is still asked for (and given back at once), so that a busy
        service refuses a made-up name exactly as it refuses a real one.
        """
        if password_hash is None:
            await self._admit()
            self._free.release()
            await asyncio.sleep(random.choice(self._recent))
            return False
        started = time.monotonic()
        right = await self._run(self._matches, password_hash, password)
        self._recent.append(time.monotonic() - started)  # only checks that were made
        return right

    def _matches(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _admit(self) -> None:
        """Take a slot, waiting at most `wait`; ResourceExhausted if none comes free."""
        if not self._free.locked():
            await self._free.acquire()  # free: returns at once
            return
        try:
            await asyncio.wait_for(self._free.acquire(), self._wait)
        except TimeoutError:
            raise ResourceExhausted(BUSY) from None

    async def _run(self, work, *args):
        """`work` on the pool in a slot, which comes free when the work is done (not when a
        cancelled caller stops waiting for it)."""
        await self._admit()
        loop = asyncio.get_running_loop()
        try:
            done = self._pool.submit(work, *args)
        except BaseException:
            self._free.release()
            raise
        done.add_done_callback(lambda _: loop.call_soon_threadsafe(self._free.release))
        return await asyncio.wrap_future(done)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
