"""The product analytics servicer: TrackEvents for the apps, the queries for admins (the
`admin` role its protos declare, which the kit's auth interceptor requires)."""

from __future__ import annotations

from zentry.analytics.v1 import product_analytics_service_pb2 as pb
from zentry.analytics.v1 import product_analytics_service_pb2_grpc

from services.analytics.product.intake import Intake
from services.analytics.product.reports import Reports
from services.analytics.product.tracking import PAGE_VIEW
from services.kit.auth import optional_caller
from services.kit.clients import client_of


class ProductAnalyticsServicer(product_analytics_service_pb2_grpc.ProductAnalyticsServiceServicer):
    def __init__(self, intake: Intake, reports: Reports):
        self._intake = intake
        self._reports = reports

    async def TrackEvents(self, request: pb.TrackEventsRequest, context):
        client = client_of(context)
        return await self._intake.track(
            request, optional_caller(), client.address, client.user_agent
        )

    async def GetEventCounts(self, request: pb.GetEventCountsRequest, context):
        return await self._reports.event_counts(request)

    async def GetEventBreakdown(self, request: pb.GetEventBreakdownRequest, context):
        return await self._reports.breakdown(
            request.name, request.dimension, request, request.limit
        )

    async def ListTopPages(self, request: pb.ListTopPagesRequest, context):
        return await self._reports.breakdown(PAGE_VIEW, "page", request, request.limit)

    async def GetTraffic(self, request: pb.GetTrafficRequest, context):
        return await self._reports.traffic(request)

    async def GetFunnel(self, request: pb.GetFunnelRequest, context):
        return await self._reports.funnel(request)

    async def GetRetention(self, request: pb.GetRetentionRequest, context):
        return await self._reports.retention(request)
