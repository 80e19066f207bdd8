"""Password hashing (argon2id) within a memory budget.

Each hash is argon2id with RFC 9106's low-memory cost (64 MiB, 3 passes) in one
lane (`PARAMETERS`), so it runs on one thread: hashes running side by side do not
slow each other down while there are cores for them, and a pod limited to one
CPU is not throttled by a hash that wants four. (argon2-cffi's default of four
lanes spends the same work on four threads: faster on an idle machine, but on
two cores one flood check beside an ordinary log-in doubled it.) A hash made
with other parameters still checks, and `outdated` says it should be replaced.

One argon2 hash takes `memory_cost` (64 MiB by default) while it runs. Hashes
run on a thread pool of their own, as many at once as the budget holds
(ZENTRY_PASSWORD_MEMORY_MIB over one hash's memory), so no flood of sign-ups
or log-ins makes the service take more. A call that finds every slot busy
waits at most `wait` seconds for one, then is refused with RESOURCE_EXHAUSTED
(429 at the gateway) instead of queueing without end. One account's passwords
are checked one at a time, so a flood at one account cannot take every slot
from everyone else.

A log-in under a name no account has is answered as late as a real check
would be (a wait as long as one of the latest real checks took, queueing
included), with no hash: made-up names, the cheapest flood there is, cost no
CPU or memory, and the time still tells nothing of which names exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.kit.errors import ResourceExhausted

BUSY = "Too many passwords are being checked right now; try again in a few seconds."
PARAMETERS = {"time_cost": 3, "memory_cost": 64 * 1024, "parallelism": 1}
#: Real checks remembered to time the answers for names no account has.
RECENT = 64


class Passwords:
    def __init__(self, memory_mib: int, wait: float, hasher: PasswordHasher | None = None):
        self._hasher = hasher or PasswordHasher(**PARAMETERS)
        self.slots = max(1, memory_mib * 1024 // self._hasher.memory_cost)
        self._free = asyncio.Semaphore(self.slots)
        self._pool = ThreadPoolExecutor(self.slots, thread_name_prefix="argon2")
        self._wait = wait
        # Each account's turn, and how many hold or wait for it.
        self._turns: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}
        # How long the latest real checks took, queueing included; one at first.
        started = time.monotonic()
        self._hasher.verify(self._hasher.hash("a password 0"), "a password 0")
        self._recent: deque[float] = deque([(time.monotonic() - started) / 2], maxlen=RECENT)

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def rehash(self, password: str) -> str | None:
        """`hash`, if a slot is free right now; None rather than wait for one (an upgrade
        of a right password's hash can wait for a later log-in, the log-in cannot)."""
        if self._free.locked():
            return None
        return await self.hash(password)  # no await before the slot is taken: still free

    def outdated(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than the ones hashes get now."""
        return self._hasher.check_needs_rehash(password_hash)

    async def matches(self, password_hash: str | None, password: str, account: str) -> bool:
        """Whether `password` is the one hashed; a real check's time without a hash (None).

        One account's passwords are checked one at a time (a later check waits at most
        `wait` for the one before, then is refused), so a flood at one account holds one
        slot, not all of them. Without a hash, a slot is still asked for (and given back
        at once), so that a busy service refuses a made-up name exactly as a real one.
        """
        if password_hash is None:
            await self._admit()
            self._free.release()
            await asyncio.sleep(random.choice(self._recent))
            return False
        started = time.monotonic()
        async with self._turn_of(account):
            right = await self._run(self._matches, password_hash, password)
        self._recent.append(time.monotonic() - started)  # only checks that were made
        return right

    @contextlib.asynccontextmanager
    async def _turn_of(self, account: str):
        turn = self._turns.setdefault(account, asyncio.Lock())
        self._waiting[account] = self._waiting.get(account, 0) + 1
        try:
            await self._take(turn)
            try:
                yield
            finally:
                turn.release()
        finally:
            self._waiting[account] -= 1
            if not self._waiting[account]:  # nobody else holds or waits: forget it
                del self._waiting[account], self._turns[account]

    def _matches(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _admit(self) -> None:
        """Take a slot, waiting at most `wait`; ResourceExhausted if none comes free."""
        await self._take(self._free)

    async def _take(self, lock: asyncio.Lock | asyncio.Semaphore) -> None:
        if not lock.locked():
            await lock.acquire()  # free: returns at once (wait_for(..., 0) would not)
            return
        try:
            await asyncio.wait_for(lock.acquire(), self._wait)
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
