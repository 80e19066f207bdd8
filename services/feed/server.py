"""The FeedService servicer: the request checked, a page read, the response built."""

from __future__ import annotations

from zentry.feed.v1 import feed_service_pb2 as pb
from zentry.feed.v1 import feed_service_pb2_grpc

from services.feed import domain
from services.feed.reading import FeedReader
from services.kit import paging
from services.kit.auth import current_caller


class FeedServicer(feed_service_pb2_grpc.FeedServiceServicer):
    def __init__(self, reader: FeedReader):
        self._reader = reader

    async def GetFeed(self, request: pb.GetFeedRequest, context) -> pb.GetFeedResponse:
        caller = current_caller()
        size = paging.page_size(request.page_size, default=domain.DEFAULT_PAGE_SIZE)
        cursor = domain.decode_cursor(request.page_token)
        page = await self._reader.page(caller.user_id, cursor, size)
        return pb.GetFeedResponse(
            items=page.items,
            next_page_token=domain.encode_cursor(page.next_cursor) if page.next_cursor else "",
            rebuilding=page.rebuilding,
        )
