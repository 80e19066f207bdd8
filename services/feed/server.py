"""The FeedService servicer: the request checked, a page read or a stream kept, the responses
built."""

from __future__ import annotations

import asyncio

from zentry.feed.v1 import feed_service_pb2 as pb
from zentry.feed.v1 import feed_service_pb2_grpc

from services.feed import domain, watching
from services.feed.config import FeedSettings
from services.feed.reading import FeedReader
from services.feed.watching import EntryChanges, Watch
from services.kit import paging
from services.kit.auth import current_caller


class FeedServicer(feed_service_pb2_grpc.FeedServiceServicer):
    def __init__(self, reader: FeedReader, changes: EntryChanges, settings: FeedSettings):
        self._reader = reader
        self._changes = changes
        self._settings = settings

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

    async def WatchFeed(self, request: pb.WatchFeedRequest, context):
        reader_id = current_caller().user_id
        cursor = watching.decode_cursor(request.cursor, reader_id)
        settings = self._settings
        watch = await self._changes.join(reader_id, cursor, settings.watch_queue)
        loop = asyncio.get_running_loop()
        ends = loop.time() + settings.watch_max_duration
        refollow_at = loop.time() + settings.watch_refollow
        try:
            yield self._heartbeat(watch)  # at once: the client knows where it starts
            while (now := loop.time()) < ends:
                wait = min(settings.watch_heartbeat, refollow_at - now, ends - now)
                try:
                    got = await asyncio.wait_for(watch.queue.get(), max(wait, 0))
                except TimeoutError:
                    got = None
                if watch.behind:
                    yield self._reset(watch, "behind")
                elif got == watching.REFOLLOW or (got is None and loop.time() >= refollow_at):
                    refollow_at = loop.time() + settings.watch_refollow
                    if await self._changes.refollow(watch):
                        yield self._reset(watch, "following")
                elif got is not None:
                    yield watching.message(*got, reader_id)
                elif loop.time() < ends:
                    yield self._heartbeat(watch)
        finally:
            self._changes.leave(watch)

    def _reset(self, watch: Watch, reason: str) -> pb.WatchFeedResponse:
        """Skip what the watcher holds and go on from where the instance stands: the feed's
        first page, read again, has it all."""
        while not watch.queue.empty():
            watch.queue.get_nowait()
        watch.behind = False
        watch.cursor = max(watch.cursor, self._changes.position)
        cursor = watching.encode_cursor(watch.cursor, watch.reader_id)
        return pb.WatchFeedResponse(reset=pb.Reset(reason=reason), cursor=cursor)

    def _heartbeat(self, watch: Watch) -> pb.WatchFeedResponse:
        """Nothing is queued, so the watcher has everything up to where the instance stands."""
        if watch.queue.empty():
            watch.cursor = max(watch.cursor, self._changes.position)
        cursor = watching.encode_cursor(watch.cursor, watch.reader_id)
        return pb.WatchFeedResponse(heartbeat=pb.Heartbeat(), cursor=cursor)
