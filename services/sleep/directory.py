"""Who the users are, as the sleep service needs them: id, username, time zone, who may
see their nights, and who follows whom.

The sleep service keeps its own copies, fed by the user service's events
(services.sleep.projector), so listing nights needs no call to another service and
recording them keeps working while the user service is down. UserDeleted
takes a user's nights with them, for good (services.kit.erasure). Two kinds of
request ask the user service directly, through Consul, with the caller's own
token:

- the caller themselves (`me`), whose zone dates the night they record: a
  change they just made may not have reached the copy yet (services.kit.profiles);
- a user the events have not brought yet (the moments after sign-up, or while
  this consumer catches up).

Either answer serves that request only, so the events stay the one writer of
the copy and an older answer can never overwrite a newer event.
"""

from __future__ import annotations

import logging

import grpc
from zentry.user.v1 import user_service_pb2, user_service_pb2_grpc

from services.kit.auth import Caller
from services.kit.db import Database
from services.kit.discovery import Balancer, NoHealthyInstance
from services.kit.errors import NotFound, Unavailable
from services.kit.profiles import OwnProfiles
from services.sleep import store
from services.sleep.store import UserRow

_log = logging.getLogger(__name__)

#: Tries of the user service (on different instances) before giving up.
ATTEMPTS = 2


class UserDirectory:
    def __init__(self, db: Database, users: Balancer, profiles: OwnProfiles, timeout: float = 2.0):
        self._db = db
        self._users = users
        self._profiles = profiles
        self._timeout = timeout

    async def me(self, caller: Caller) -> UserRow:
        """The caller as the user service has them now; the copy when it cannot say."""
        fresh = await self._profiles.fresh(caller)
        if fresh is not None:
            return UserRow(fresh.user_id, fresh.username, fresh.time_zone)
        async with self._db.transaction() as session:
            user = await store.find_user(session, caller.user_id)
        if user is None:
            raise Unavailable(
                "Your profile cannot be read right now; try again shortly, "
                "or give the night's timeZone."
            )
        return user

    async def by_username(self, caller: Caller, username: str) -> UserRow:
        """The user called `username` (any case); NotFound if there is none."""
        async with self._db.transaction() as session:
            user = await store.find_user_by_username(session, username)
        return user or await self._ask(caller, username)

    async def _ask(self, caller: Caller, username: str) -> UserRow:
        """GetUser on the user service, on the caller's behalf."""
        request = user_service_pb2.GetUserRequest(username=username)
        metadata = (("authorization", caller.authorization),)
        error: Exception | None = None
        for _ in range(ATTEMPTS):
            try:
                await self._users.wait_ready(self._timeout)
                stub = user_service_pb2_grpc.UserServiceStub(self._users.channel())
                user = await stub.GetUser(request, metadata=metadata, timeout=self._timeout)
                return UserRow(user.id, user.username, user.time_zone)
            except grpc.aio.AioRpcError as failure:
                if failure.code() == grpc.StatusCode.NOT_FOUND:
                    raise NotFound(f"No user named {username!r}.") from None
                if failure.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    raise
                error = failure
            except (NoHealthyInstance, TimeoutError) as failure:
                error = failure
        _log.warning("user service unreachable for a directory miss: %r", error)
        raise Unavailable("The user directory cannot be reached right now; try again shortly.")
