"""The UserService servicer: protos in, an action call, protos out. Nothing else."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from google.api import httpbody_pb2
from google.protobuf import duration_pb2, empty_pb2
from zentry.user.v1 import user_pb2, user_service_pb2_grpc
from zentry.user.v1 import user_service_pb2 as pb

from services.kit import masks, paging
from services.kit.auth import current_caller
from services.kit.clients import client_of
from services.kit.wellknown import timestamp
from services.user import domain
from services.user.actions import NewSession, UserActions
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
        return _session(session)

    async def RefreshSession(self, request: pb.RefreshSessionRequest, context) -> pb.Session:
        return _session(await self._actions.refresh(request.refresh_token))

    async def DeleteSession(self, request: pb.DeleteSessionRequest, context) -> empty_pb2.Empty:
        await self._actions.end_session(current_caller(), request.session)
        return empty_pb2.Empty()

    async def DeleteAllSessions(
        self, request: pb.DeleteAllSessionsRequest, context
    ) -> empty_pb2.Empty:
        await self._actions.end_all_sessions(current_caller())
        return empty_pb2.Empty()

    async def ChangePassword(self, request: pb.ChangePasswordRequest, context) -> empty_pb2.Empty:
        await self._actions.change_password(
            current_caller(),
            request.username,
            request.current_password,
            request.new_password,
            client_of(context).address,
        )
        return empty_pb2.Empty()

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
        paths = domain.check_update_mask(list(request.update_mask.paths), masks.present(given))
        changes = {
            "display_name": given.display_name,
            "bio": given.bio,
            "time_zone": given.time_zone,
            "sleep_goal": given.sleep_goal.ToTimedelta(),
            "nights_visible_to": given.nights_visible_to,
            "approve_followers": given.approve_followers,
            "show_on_global_boards": given.show_on_global_boards,
        }
        user = await self._actions.update_profile(caller, request.username, changes, paths)
        return to_proto(user, with_email=True)

    async def FollowUser(self, request: pb.FollowUserRequest, context) -> pb.FollowUserResponse:
        user, requested = await self._actions.follow(current_caller(), request.username)
        return pb.FollowUserResponse(user=to_proto(user), requested=requested)

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

    async def DeleteUser(self, request: pb.DeleteUserRequest, context) -> empty_pb2.Empty:
        await self._actions.delete_account(
            current_caller(), request.username, request.password, client_of(context).address
        )
        return empty_pb2.Empty()

    async def ExportUser(self, request: pb.ExportUserRequest, context) -> pb.UserExport:
        export = await self._actions.export(current_caller(), request.username)
        return pb.UserExport(
            export_time=timestamp(datetime.now(UTC)),
            profile=to_proto(export.profile, with_email=True),
            nights=export.nights,
            following=export.following,
            followers=export.followers,
            followers_truncated=export.followers_truncated,
            follow_requests=[
                pb.FollowRequest(requester=to_proto(user), create_time=timestamp(asked_at))
                for user, asked_at in export.requests
            ],
        )

    async def RemoveFollower(self, request: pb.RemoveFollowerRequest, context) -> empty_pb2.Empty:
        await self._actions.remove_follower(current_caller(), request.username, request.follower)
        return empty_pb2.Empty()

    async def ListFollowRequests(
        self, request: pb.ListFollowRequestsRequest, context
    ) -> pb.ListFollowRequestsResponse:
        size = paging.page_size(request.page_size)
        listing = f"requests|{request.username.casefold()}"
        rows = await self._actions.list_requests(
            current_caller(),
            request.username,
            size + 1,
            paging.decode_time_and_id(request.page_token, listing),
        )
        page, token = _page(rows, size, listing)
        return pb.ListFollowRequestsResponse(
            follow_requests=[
                pb.FollowRequest(requester=to_proto(user), create_time=timestamp(asked_at))
                for user, asked_at in page
            ],
            next_page_token=token,
        )

    async def ApproveFollowRequest(
        self, request: pb.ApproveFollowRequestRequest, context
    ) -> pb.ApproveFollowRequestResponse:
        follower = await self._actions.approve(
            current_caller(), request.username, request.requester
        )
        return pb.ApproveFollowRequestResponse(follower=to_proto(follower))

    async def RejectFollowRequest(
        self, request: pb.RejectFollowRequestRequest, context
    ) -> empty_pb2.Empty:
        await self._actions.reject(current_caller(), request.username, request.requester)
        return empty_pb2.Empty()

    async def CancelFollowRequest(
        self, request: pb.CancelFollowRequestRequest, context
    ) -> empty_pb2.Empty:
        await self._actions.cancel(current_caller(), request.username, request.requester)
        return empty_pb2.Empty()

    async def _list(self, request, direction: str) -> tuple[list[user_pb2.User], str]:
        size = paging.page_size(request.page_size)
        listing = f"{direction}|{request.username.casefold()}"
        rows = await self._actions.list_follows(
            current_caller(),
            request.username,
            direction,
            size + 1,
            paging.decode_time_and_id(request.page_token, listing),
        )
        page, token = _page(rows, size, listing)
        return [to_proto(user) for user, _ in page], token


def _page(rows: list[tuple[UserRow, datetime]], size: int, listing: str) -> tuple[list, str]:
    """The first `size` of `rows` (one more was asked for), and the token of the next page
    (good for `listing` only: whose list, which direction)."""
    page = rows[:size]
    if len(rows) <= size:
        return page, ""
    last_user, at = page[-1]
    return page, paging.encode_time_and_id(at, last_user.id, listing)


def _session(session: NewSession) -> pb.Session:
    return pb.Session(
        access_token=session.token,
        expire_time=timestamp(session.expires),
        user=to_proto(session.user, with_email=True),
        refresh_token=session.refresh_token,
        refresh_expire_time=timestamp(session.refresh_expires),
    )


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
        nights_visible_to=user.nights_visible_to,
        approve_followers=user.approve_followers,
        show_on_global_boards=user.show_on_global_boards,
    )
