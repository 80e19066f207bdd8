"""The SleepService servicer: protos in, an action call, protos out. Nothing else."""

from __future__ import annotations

from google.protobuf import empty_pb2
from zentry.sleep.v1 import sleep_entry_pb2, sleep_service_pb2_grpc
from zentry.sleep.v1 import sleep_service_pb2 as pb

from services.kit import masks, paging
from services.kit.auth import current_caller
from services.kit.wellknown import instant, timestamp
from services.sleep import domain
from services.sleep.actions import SleepActions, shared_fields
from services.sleep.domain import State
from services.sleep.store import EntryRow


class SleepServicer(sleep_service_pb2_grpc.SleepServiceServicer):
    def __init__(self, actions: SleepActions):
        self._actions = actions

    async def CreateSleepEntry(
        self, request: pb.CreateSleepEntryRequest, context
    ) -> sleep_entry_pb2.SleepEntry:
        entry = await self._actions.create(
            current_caller(),
            start=instant(request, "start_time"),
            end=instant(request, "end_time"),
            time_zone=request.time_zone,
            quality=request.quality,
            note=request.note,
            tags=list(request.tags),
            request_id=request.request_id,
        )
        return to_proto(entry)

    async def StartSleepEntry(
        self, request: pb.StartSleepEntryRequest, context
    ) -> sleep_entry_pb2.SleepEntry:
        entry = await self._actions.start(
            current_caller(),
            time_zone=request.time_zone,
            planned_end=instant(request, "planned_end_time"),
            request_id=request.request_id,
        )
        return to_proto(entry)

    async def FinishSleepEntry(
        self, request: pb.FinishSleepEntryRequest, context
    ) -> sleep_entry_pb2.SleepEntry:
        entry = await self._actions.finish(
            current_caller(), request.id, instant(request, "end_time"), request.quality
        )
        return to_proto(entry)

    async def CancelSleepEntry(
        self, request: pb.CancelSleepEntryRequest, context
    ) -> empty_pb2.Empty:
        await self._actions.cancel(current_caller(), request.id)
        return empty_pb2.Empty()

    async def GetSleepEntry(
        self, request: pb.GetSleepEntryRequest, context
    ) -> sleep_entry_pb2.SleepEntry:
        return to_proto(await self._actions.get(current_caller(), request.id))

    async def UpdateSleepEntry(
        self, request: pb.UpdateSleepEntryRequest, context
    ) -> sleep_entry_pb2.SleepEntry:
        given = request.sleep_entry
        paths = domain.check_update_mask(list(request.update_mask.paths), masks.present(given))
        changes = {
            "start_time": instant(given, "start_time"),
            "end_time": instant(given, "end_time"),
            "time_zone": given.time_zone,
            "quality": given.quality,
            "note": given.note,
            "tags": list(given.tags),
        }
        entry = await self._actions.update(current_caller(), request.id, changes, paths)
        return to_proto(entry)

    async def DeleteSleepEntry(
        self, request: pb.DeleteSleepEntryRequest, context
    ) -> empty_pb2.Empty:
        await self._actions.delete(current_caller(), request.id)
        return empty_pb2.Empty()

    async def ListSleepEntries(
        self, request: pb.ListSleepEntriesRequest, context
    ) -> pb.ListSleepEntriesResponse:
        caller = current_caller()
        size = paging.page_size(request.page_size)
        first = domain.parse_date(request.start_date, "start_date")
        last = domain.parse_date(request.end_date, "end_date")
        domain.check_date_range(first, last)
        owner_id = await self._actions.owner_id(caller, request.username)
        unfinished = request.show_unfinished
        # A token is only good for the list it came from (AIP-158).
        listing = f"{owner_id}|{first or ''}|{last or ''}" + ("|unfinished" if unfinished else "")
        after = paging.decode_time_and_id(request.page_token, listing)
        rows = await self._actions.list(caller, owner_id, first, last, size + 1, after, unfinished)
        page, more = rows[:size], len(rows) > size
        token = paging.encode_time_and_id(page[-1].list_time, page[-1].id, listing) if more else ""
        return pb.ListSleepEntriesResponse(
            sleep_entries=[to_proto(entry) for entry in page], next_page_token=token
        )


STATES = {
    State.RECORDED: sleep_entry_pb2.SleepEntry.STATE_RECORDED,
    State.OPEN: sleep_entry_pb2.SleepEntry.STATE_OPEN,
    State.ABANDONED: sleep_entry_pb2.SleepEntry.STATE_ABANDONED,
}


def to_proto(entry: EntryRow) -> sleep_entry_pb2.SleepEntry:
    proto = sleep_entry_pb2.SleepEntry(
        id=entry.id, user_id=entry.user_id, state=STATES[entry.state], **shared_fields(entry)
    )
    if entry.planned_end_time is not None:
        proto.planned_end_time.CopyFrom(timestamp(entry.planned_end_time))
    return proto
