"""The caller's own profile, asked of the user service where it decides what a request does.

Services keep event-fed copies of the profiles they need, and a copy lags the
user service by the outbox relay and a consumer: milliseconds when all is
well, minutes when Kafka or the consumer is down. Where the caller's own
settings decide the answer (the zone that dates a night, the "today" of a
board, the goal behind sleep debt), a copy that has not yet seen a change the
caller just made would answer wrongly, and for a night, for good. So those
requests read the caller's profile from its owner, one primary-key lookup
away (read your own writes).

When the user service cannot answer within `timeout` (or answers with any
error but NOT_FOUND), `fresh` returns None and the service answers from its
copy: recording a night never depends on the user service being up. After an
outage (not a refusal of one call) the copy answers for `cooldown` seconds
without asking, so an outage costs one timeout, not one per request; a
warning says when that starts and when the user service answers again.
Without a user service to ask (`users` None: tools and tests that run a
service's parts alone), the copy always answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from zentry.user.v1 import user_service_pb2, user_service_pb2_grpc

from services.kit.auth import Caller
from services.kit.discovery import Balancer, NoHealthyInstance
from services.kit.errors import NotFound
from services.kit.settings import Env

_log = logging.getLogger(__name__)


#: Answers that say the user service as a whole cannot answer now: the copy answers for a while.
OUTAGE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)


@dataclass(frozen=True)
class Profile:
    """The settings of a user that other services act on."""

    user_id: str
    username: str
    time_zone: str
    sleep_goal_seconds: int


@dataclass(frozen=True)
class ProfileSettings:
    #: Seconds a request waits for the user service before its copy answers.
    timeout: float = 0.5
    #: Seconds the copy answers without asking after the user service failed to.
    cooldown: float = 5.0

    @classmethod
    def load(cls, env: Env | None = None) -> ProfileSettings:
        env = env or Env()
        return cls(
            timeout=env.seconds("PROFILE_TIMEOUT", cls.timeout, positive=True),
            cooldown=env.seconds("PROFILE_COOLDOWN", cls.cooldown),
        )


class OwnProfiles:
    def __init__(
        self,
        users: Balancer | None,
        settings: ProfileSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._users = users
        self._settings = settings or ProfileSettings()
        self._clock = clock
        self._copy_until = 0.0  # the user service failed; the copy answers until then
        self._copied = 0  # requests the copy answered since the user service failed

    async def fresh(self, caller: Caller) -> Profile | None:
        """The caller's profile as the user service has it now; None when it cannot say in time.

        NotFound when the user service says the caller's account does not exist.
        """
        if self._users is None:
            return None
        if self._clock() < self._copy_until:
            self._copied += 1
            return None
        request = user_service_pb2.GetUserRequest(username="me")
        try:
            await self._users.wait_ready(self._settings.timeout)
            stub = user_service_pb2_grpc.UserServiceStub(self._users.channel())
            user = await stub.GetUser(
                request,
                metadata=(("authorization", caller.authorization),),
                timeout=self._settings.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound("Your account no longer exists.") from None
            if error.code() not in OUTAGE_CODES:  # about this call only: no cooldown for all
                _log.warning("the user service refused a caller's profile: %s", error.code().name)
                return None
            return self._unanswered(f"{error.code().name}: {error.details()}")
        except (NoHealthyInstance, TimeoutError) as error:
            return self._unanswered(str(error) or "no instance known in time")
        if self._copy_until:
            _log.warning(
                "the user service answers again; %d requests used this service's copy "
                "of their profile meanwhile",
                self._copied,
            )
            self._copy_until, self._copied = 0.0, 0
        return Profile(user.id, user.username, user.time_zone, user.sleep_goal.seconds)

    def _unanswered(self, why: str) -> None:
        if not self._copy_until:
            _log.warning(
                "the user service did not answer for a caller's profile (%s); this service's "
                "copy answers, and may miss a change made in the last moments, for %.0f s",
                why,
                self._settings.cooldown,
            )
        self._copy_until = self._clock() + self._settings.cooldown
        self._copied += 1
        return None
