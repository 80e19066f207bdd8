"""The sleep statistics servicer: the caller's own statistics and trend."""

from __future__ import annotations

from zentry.analytics.v1 import sleep_stats_service_pb2 as pb
from zentry.analytics.v1 import sleep_stats_service_pb2_grpc

from services.analytics.stats.reading import SleepStatsReader
from services.kit.auth import current_caller


class SleepStatsServicer(sleep_stats_service_pb2_grpc.SleepStatsServiceServicer):
    def __init__(self, reader: SleepStatsReader):
        self._reader = reader

    async def GetSleepStats(self, request: pb.GetSleepStatsRequest, context):
        caller = current_caller()
        return await self._reader.stats(caller, request.start_date, request.end_date)

    async def GetSleepTrend(self, request: pb.GetSleepTrendRequest, context):
        caller = current_caller()
        return await self._reader.trend(caller, request.start_date, request.end_date)
