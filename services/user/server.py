"""The UserService servicer: protos in, an action call, protos out. Nothing else."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from google.api import httpbody_pb2
from google.protobuf import duration_pb2
from zentry.user.v1 import user_pb2, user_service_pb2_grpc
from zentry.user.v1 import user_service_pb2 as pb

from services.kit import paging
from services.kit.auth import current_caller
from services.kit.clients import client_of
from services.kit.errors import InvalidArgument
from services.kit.wellknown import timestamp
from services.user import domain
from services.user.actions import UserActions
from services.user.store import UserRow


class UserServicer(user_service_pb2_grpc.UserServiceServicer):
    def __init__(self, actions: UserActions):
        self._actions = actions

    async def CreateUser(self, request: pb.CreateUserRequest, context) -> user_pb2.User:
        user = await self._actions.register(
            request.username,
            request.email,
            request.password,
            request.display_name,
            request.time_zone,
        )
        return to_proto(user, with_email=True)

    async def CreateSession(self, request: pb.CreateSessionRequest, context) -> pb.Session:
        session = await self._actions.log_in(
            request.username, request.password, client_of(context).address
        )
        return pb.Session(
            access_token=session.token,
            expire_time=timestamp(session.expires),
            user=to_proto(session.user, with_email=True),
        )

    async def GetJwks(self, request: pb.GetJwksRequest, context) -> httpbody_pb2.HttpBody:
        return httpbody_pb2.HttpBody(
            content_type="application/json", data=json.dumps(self._actions.issuer.jwks()).encode()
        )

    async def GetUser(self, request: pb.GetUserRequest, context) -> user_pb2.User:
        caller = current_caller()
        user = await self._actions.get(caller, request.username)
        return to_proto(user, with_email=user.id == caller.user_id)

    async def UpdateUser(self, request: pb.UpdateUserRequest, context) -> user_pb2.User:
        caller = current_caller()
        given = request.user
        present = {f.name for f, _ in given.ListFields()}
        paths = domain.check_update_mask(list(request.update_mask.paths), present)
        changes = {
            "display_name": given.display_name,
            "bio": given.bio,
            "time_zone": given.time_zone,
            "sleep_goal": given.sleep_goal.ToTimedelta(),
        }
        user = await self._actions.update_profile(caller, request.username, changes, paths)
        return to_proto(user, with_email=True)

    async def FollowUser(self, request: pb.FollowUserRequest, context) -> pb.FollowUserResponse:
        user = await self._actions.follow(current_caller(), request.username)
        return pb.FollowUserResponse(user=to_proto(user))

    async def UnfollowUser(
        self, request: pb.UnfollowUserRequest, context
    ) -> pb.UnfollowUserResponse:
        user = await self._actions.unfollow(current_caller(), request.username)
        return pb.UnfollowUserResponse(user=to_proto(user))

    async def ListFollowers(
        self, request: pb.ListFollowersRequest, context
    ) -> pb.ListFollowersResponse:
        users, token = await self._list(request, "followers")
        return pb.ListFollowersResponse(users=users, next_page_token=token)

    async def ListFollowing(
        self, request: pb.ListFollowingRequest, context
    ) -> pb.ListFollowingResponse:
        users, token = await self._list(request, "following")
        return pb.ListFollowingResponse(users=users, next_page_token=token)

    async def _list(self, request, direction: str) -> tuple[list[user_pb2.User], str]:
        size = paging.page_size(request.page_size)
        cursor = paging.decode_token(request.page_token, {"t", "id"})
        after = None
        if cursor:
            try:
                after = (datetime.fromisoformat(cursor["t"]), str(uuid.UUID(cursor["id"])))
            except (TypeError, ValueError, AttributeError):
                raise InvalidArgument.field(
                    "page_token", "is damaged; start again without it"
                ) from None
        rows = await self._actions.list_follows(
            current_caller(), request.username, direction, size + 1, after
        )
        page, more = rows[:size], len(rows) > size
        token = ""
        if more:
            last_user, followed_at = page[-1]
            token = paging.encode_token({"t": followed_at.isoformat(), "id": last_user.id})
        return [to_proto(user) for user, _ in page], token


def to_proto(user: UserRow, with_email: bool = False) -> user_pb2.User:
    return user_pb2.User(
        id=user.id,
        username=user.username,
        email=user.email if with_email else "",
        display_name=user.display_name,
        bio=user.bio,
        time_zone=user.time_zone,
        sleep_goal=duration_pb2.Duration(seconds=user.sleep_goal_seconds),
        follower_count=user.follower_count,
        following_count=user.following_count,
        celebrity=user.celebrity,
        create_time=timestamp(user.created_at),
        update_time=timestamp(user.updated_at),
    )
