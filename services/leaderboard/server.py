"""The LeaderboardService servicer: requests checked, a reader asked, boards returned."""

from __future__ import annotations

from zentry.leaderboard.v1 import leaderboard_service_pb2 as pb
from zentry.leaderboard.v1 import leaderboard_service_pb2_grpc

from services.kit import paging
from services.kit.auth import current_caller
from services.kit.errors import InvalidArgument
from services.leaderboard.reading import LeaderboardReader

DEFAULT_RADIUS, MAX_RADIUS = 5, 50


class LeaderboardServicer(leaderboard_service_pb2_grpc.LeaderboardServiceServicer):
    def __init__(self, reader: LeaderboardReader):
        self._reader = reader

    async def GetLeaderboard(self, request: pb.GetLeaderboardRequest, context) -> pb.Leaderboard:
        caller = current_caller()
        size = paging.page_size(request.page_size, default=20)
        query = await self._reader.query(
            caller, request.metric, request.window, request.date, request.scope
        )
        return await self._reader.top(caller, query, size, request.page_token)

    async def GetLeaderboardAroundMe(
        self, request: pb.GetLeaderboardAroundMeRequest, context
    ) -> pb.Leaderboard:
        caller = current_caller()
        if not 0 <= request.radius <= MAX_RADIUS:
            raise InvalidArgument.field("radius", f"must be 0 to {MAX_RADIUS} (0 means 5)")
        query = await self._reader.query(
            caller, request.metric, request.window, request.date, request.scope
        )
        return await self._reader.around(caller, query, request.radius or DEFAULT_RADIUS)
