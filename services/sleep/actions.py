"""What the sleep service does, one method per use case: domain rules + store + events.

Each change runs in one transaction (the unit of work) and writes its event
to the outbox in that same transaction, keyed by the owner's id. Nothing here
knows about gRPC.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import NoReturn

from zentry.events.v1 import sleep_events_pb2 as ev

from services.kit import erasure, zones
from services.kit.auth import Caller
from services.kit.db import Database
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from services.kit.events import SLEEP_EVENTS
from services.kit.outbox import Outbox
from services.kit.wellknown import duration, timestamp
from services.sleep import domain, privacy, store
from services.sleep.directory import UserDirectory
from services.sleep.domain import Night, State
from services.sleep.store import EntryRow

#: Nights closed as abandoned per transaction of a sweep.
ABANDON_BATCH = 100


class SleepActions:
    def __init__(
        self,
        db: Database,
        directory: UserDirectory,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._db = db
        self._directory = directory
        self._clock = clock
        self._outbox = Outbox(SLEEP_EVENTS, producer="sleep")

    async def create(
        self,
        caller: Caller,
        *,
        start: datetime | None,
        end: datetime | None,
        time_zone: str,
        quality: int,
        note: str,
        tags: list[str],
        request_id: str,
    ) -> EntryRow:
        """Record a night; with a request id, a retry returns the first result instead."""
        request_id = domain.check_request_id(request_id)
        zone = time_zone or (await self._directory.me(caller)).time_zone
        night = domain.night(
            start=start,
            end=end,
            time_zone=zone,
            quality=quality,
            note=note,
            tags=tags,
            now=self._clock(),
        )
        entry_id = str(uuid.uuid4())
        try:
            async with self._db.transaction() as session:
                await _check_not_deleted(session, caller)
                if request_id:
                    fingerprint = domain.request_fingerprint(
                        night.start, night.end, time_zone, night.quality, night.note, night.tags
                    )
                    first = await store.claim_request(
                        session, caller.user_id, request_id, entry_id, fingerprint
                    )
                    if first is not None:
                        return await self._answer_retry(session, request_id, fingerprint, *first)
                entry = await store.insert_entry(session, entry_id, caller.user_id, night)
                await self._outbox.add(
                    session, ev.SleepEntryCreated(entry=state(entry)), entry.user_id
                )
        except store.Overlap:  # rolled back, the request id's claim with it
            await self._refuse_overlap(caller.user_id, night)
        return entry

    async def _answer_retry(
        self, session, request_id: str, fingerprint: str, entry_id: str, first_fingerprint: str
    ) -> EntryRow:
        """The answer to a create retried with the same request id."""
        if fingerprint != first_fingerprint:
            raise AlreadyExists(
                f"request_id {request_id!r} was already used for a different night "
                f"(entry {entry_id}); use a new request_id for a new night."
            )
        entry = await store.get_entry(session, entry_id)
        if entry is None:
            raise FailedPrecondition(
                f"The entry request_id {request_id!r} created ({entry_id}) has since been "
                "deleted; use a new request_id to record the night again."
            )
        return entry

    async def start(
        self, caller: Caller, *, time_zone: str, planned_end: datetime | None, request_id: str
    ) -> EntryRow:
        """Start a night now, open until finished; with a request id, a retry returns the
        first result instead."""
        request_id = domain.check_request_id(request_id)
        zone = time_zone or (await self._directory.me(caller)).time_zone
        zones.zone(zone)
        now = self._clock()
        planned_end = domain.check_planned_end(planned_end, now)
        entry_id = str(uuid.uuid4())
        try:
            async with self._db.transaction() as session:
                await _check_not_deleted(session, caller)
                if request_id:
                    fingerprint = domain.start_fingerprint(time_zone, planned_end)
                    first = await store.claim_request(
                        session, caller.user_id, request_id, entry_id, fingerprint
                    )
                    if first is not None:
                        return await self._answer_retry(session, request_id, fingerprint, *first)
                await self._abandon(session, now, caller.user_id)
                entry = await store.insert_open(
                    session, entry_id, caller.user_id, now, zone, planned_end
                )
                started = ev.SleepEntryStarted(entry=state(entry))
                if planned_end is not None:
                    started.planned_end_time.CopyFrom(timestamp(planned_end))
                await self._outbox.add(session, started, entry.user_id)
        except store.AlreadyOpen:  # rolled back, the request id's claim with it
            await self._refuse_second_open(caller.user_id)
        return entry

    async def _refuse_second_open(self, user_id: str) -> NoReturn:
        async with self._db.transaction() as session:
            open_night = await store.open_night_of(session, user_id)
        if open_night is None:  # finished or cancelled since
            raise FailedPrecondition(
                "You had another night open, which ended a moment ago; try again."
            )
        zone = zones.zone(open_night.time_zone)
        raise FailedPrecondition(
            f"You already have a night open since "
            f"{open_night.start_time.astimezone(zone):%Y-%m-%d %H:%M} {open_night.time_zone} "
            f"(entry {open_night.id}); finish or cancel it first."
        )

    async def finish(
        self, caller: Caller, entry_id: str, end: datetime | None, quality: int
    ) -> EntryRow:
        """End an open night (now, if `end` is None) or give an abandoned one its end: it is
        recorded, under every rule of a night recorded after the fact."""
        entry_id = _check_id(entry_id)
        quality = domain.check_quality(quality)
        now = self._clock()
        try:
            async with self._db.transaction() as session:
                entry = _found(await store.get_entry(session, entry_id, True), entry_id)
                await _check_owner(session, caller, entry, "finish")
                if entry.recorded:
                    return _finished_already(entry, end, quality)
                if end is None and (
                    entry.state == State.ABANDONED or domain.overdue(entry.start_time, now)
                ):
                    raise InvalidArgument.field(
                        "end_time",
                        "is required: this night was left open for more than "
                        f"{domain.span(domain.MAX_DURATION)}, so say when it ended",
                    )
                night = domain.night(
                    start=entry.start_time,
                    end=end or now,
                    time_zone=entry.time_zone,
                    quality=quality or entry.quality,
                    note=entry.note,
                    tags=entry.tags,
                    now=now,
                )
                recorded = await self._record(session, entry, night)
        except store.Overlap:  # rolled back
            await self._refuse_overlap(entry.user_id, night, except_id=entry.id)
        return recorded

    async def _record(self, session, entry: EntryRow, night: Night) -> EntryRow:
        """An unfinished night, recorded: from now on it counts (SleepEntryCreated)."""
        recorded = await store.update_entry(session, entry.id, night)
        await self._outbox.add(session, ev.SleepEntryCreated(entry=state(recorded)), entry.user_id)
        return recorded

    async def cancel(self, caller: Caller, entry_id: str) -> None:
        entry_id = _check_id(entry_id)
        async with self._db.transaction() as session:
            entry = _found(await store.get_entry(session, entry_id, True), entry_id)
            await _check_owner(session, caller, entry, "cancel")
            if entry.state != State.OPEN:
                raise FailedPrecondition(
                    f"Only an open night can be cancelled; this one is {entry.state}. "
                    "Delete it instead."
                )
            await store.delete_entry(session, entry.id)
            await self._outbox.add(
                session, ev.SleepEntryCancelled(entry=state(entry)), entry.user_id
            )

    async def abandon_overdue(self) -> int:
        """Close every night open longer than a night lasts as abandoned; how many."""
        closed = 0
        while True:
            async with self._db.transaction() as session:
                batch = await self._abandon(session, self._clock())
            closed += batch
            if batch < ABANDON_BATCH:
                return closed

    async def _abandon(self, session, now: datetime, user_id: str | None = None) -> int:
        overdue = await store.abandon_overdue(
            session, now - domain.MAX_DURATION, ABANDON_BATCH, user_id
        )
        for entry in overdue:
            await self._outbox.add(
                session, ev.SleepEntryAbandoned(entry=state(entry)), entry.user_id
            )
        return len(overdue)

    async def get(self, caller: Caller, entry_id: str) -> EntryRow:
        entry_id = _check_id(entry_id)
        async with self._db.transaction() as session:
            entry = await store.get_entry(session, entry_id)
            # An entry its reader may not see is answered as one that is not there; an
            # unfinished night is its owner's alone.
            if entry is not None and not await _may_see(session, caller, entry):
                entry = None
            return _found(entry, entry_id)

    async def update(
        self, caller: Caller, entry_id: str, changes: dict, paths: list[str]
    ) -> EntryRow:
        """`changes` holds candidate values by proto field name; only `paths` are applied."""
        entry_id = _check_id(entry_id)
        try:
            async with self._db.transaction() as session:
                entry = _found(await store.get_entry(session, entry_id, True), entry_id)
                await _check_owner(session, caller, entry, "change")
                if not entry.recorded:
                    if "end_time" not in paths:
                        return await self._update_details(session, caller, entry, changes, paths)
                    if entry.state == State.OPEN:
                        raise FailedPrecondition(
                            "This night is still open: finish it (FinishSleepEntry) to give "
                            "it an end."
                        )
                    night = await self._changed_night(caller, entry, changes, paths)
                    return await self._record(session, entry, night)
                night = await self._changed_night(caller, entry, changes, paths)
                if night == entry.night:
                    return entry  # nothing changes, no event
                updated = await store.update_entry(session, entry.id, night)
                before, after = state(entry), state(updated)
                changed = [
                    f.name
                    for f in ev.SleepEntryState.DESCRIPTOR.fields
                    if f.name not in ("revision", "update_time")
                    and getattr(before, f.name) != getattr(after, f.name)
                ]
                await self._outbox.add(
                    session,
                    ev.SleepEntryUpdated(entry=after, previous=before, changed_fields=changed),
                    entry.user_id,
                )
        except store.Overlap:  # rolled back
            await self._refuse_overlap(entry.user_id, night, except_id=entry.id)
        return updated

    async def _changed_night(
        self, caller: Caller, entry: EntryRow, changes: dict, paths: list[str]
    ) -> Night:
        """The entry's night with the fields in `paths` taken from `changes`, checked."""
        wanted = {
            "start_time": entry.start_time,
            "end_time": entry.end_time,
            "time_zone": entry.time_zone,
            "quality": entry.quality,
            "note": entry.note,
            "tags": entry.tags,
        }
        wanted.update({path: changes[path] for path in paths})
        if not wanted["time_zone"]:
            wanted["time_zone"] = (await self._directory.me(caller)).time_zone
        return domain.night(
            start=wanted["start_time"],
            end=wanted["end_time"],
            time_zone=wanted["time_zone"],
            quality=wanted["quality"],
            note=wanted["note"],
            tags=wanted["tags"],
            now=self._clock(),
        )

    async def _update_details(
        self, session, caller: Caller, entry: EntryRow, changes: dict, paths: list[str]
    ) -> EntryRow:
        """An unfinished night's zone, rating, note or tags, changed: it counts nowhere, so
        no event says so."""
        if "start_time" in paths:
            raise FailedPrecondition(
                f"An {entry.state} night's start_time changes with its end: finish it first, "
                "or give it an end_time too."
            )
        wanted = {
            "time_zone": entry.time_zone,
            "quality": entry.quality,
            "note": entry.note,
            "tags": entry.tags,
        }
        wanted.update({path: changes[path] for path in paths})
        zone = wanted["time_zone"] or (await self._directory.me(caller)).time_zone
        zones.zone(zone)
        return await store.update_details(
            session,
            entry.id,
            zone,
            domain.check_quality(wanted["quality"]),
            domain.check_note(wanted["note"]),
            domain.check_tags(wanted["tags"]),
        )

    async def delete(self, caller: Caller, entry_id: str) -> None:
        """Delete any of the caller's entries; an unfinished one is cancelled, as it never
        counted (SleepEntryCancelled)."""
        entry_id = _check_id(entry_id)
        async with self._db.transaction() as session:
            entry = _found(await store.get_entry(session, entry_id, True), entry_id)
            await _check_owner(session, caller, entry, "delete")
            await store.delete_entry(session, entry.id)
            gone = ev.SleepEntryDeleted if entry.recorded else ev.SleepEntryCancelled
            await self._outbox.add(session, gone(entry=state(entry)), entry.user_id)

    async def owner_id(self, caller: Caller, username: str) -> str:
        """`me` or a username → the user's id; NotFound if there is none."""
        if username == domain.ME:
            return caller.user_id
        return (await self._directory.by_username(caller, username)).id

    async def list(
        self,
        caller: Caller,
        owner_id: str,
        first: date | None,
        last: date | None,
        limit: int,
        after: tuple[datetime, str] | None,
        unfinished: bool = False,
    ) -> list[EntryRow]:
        if unfinished and owner_id != caller.user_id:
            raise InvalidArgument.field(
                "show_unfinished", "lists only your own unfinished nights: use it with `me`"
            )
        async with self._db.transaction() as session:
            await privacy.check_can_view(session, caller, owner_id)
            return await store.list_entries(
                session, owner_id, first, last, limit, after, unfinished
            )

    async def _refuse_overlap(
        self, user_id: str, night: Night, except_id: str | None = None
    ) -> NoReturn:
        """After the exclusion constraint refused `night`: the error naming the other night,
        read in a transaction of its own (the refused one is over)."""
        async with self._db.transaction() as session:
            clash = await store.find_overlap(session, user_id, night, except_id)
        if clash is None:  # deleted or moved since: the same request may well succeed now
            raise FailedPrecondition(
                "This night overlapped another of your entries, which changed a moment ago; "
                "try again."
            )
        zone = zones.zone(clash.time_zone)
        raise FailedPrecondition(
            f"This night overlaps your entry {clash.id} "
            f"({clash.start_time.astimezone(zone):%Y-%m-%d %H:%M} to "
            f"{clash.end_time.astimezone(zone):%Y-%m-%d %H:%M} {clash.time_zone}); "
            "change the times or edit that entry instead."
        )


def _check_id(entry_id: str) -> str:
    try:
        return str(uuid.UUID(entry_id))
    except ValueError:
        raise InvalidArgument.field("id", f"{entry_id!r} is not a sleep entry id") from None


async def _check_not_deleted(session, caller: Caller) -> None:
    """A deleted account's access token may live a few minutes more; it records nothing."""
    if await erasure.erased(session, [caller.user_id]):
        raise Unauthenticated("This account has been deleted.")


def _found(entry: EntryRow | None, entry_id: str) -> EntryRow:
    if entry is None:
        raise NotFound(f"No sleep entry with id {entry_id}.")
    return entry


async def _may_see(session, caller: Caller, entry: EntryRow) -> bool:
    if entry.user_id == caller.user_id:
        return True
    return entry.recorded and await privacy.can_view(session, caller, entry.user_id)


async def _check_owner(session, caller: Caller, entry: EntryRow, verb: str) -> None:
    """PermissionDenied for another's entry the caller may see; NotFound for one they may
    not, as for an entry that is not there."""
    if entry.user_id == caller.user_id:
        return
    if not await _may_see(session, caller, entry):
        _found(None, entry.id)
    raise PermissionDenied(f"Only the owner of a sleep entry can {verb} it.")


def _finished_already(entry: EntryRow, end: datetime | None, quality: int) -> EntryRow:
    """A finish of a recorded night: a retry (no end, or the same, and no other rating)
    returns it unchanged; anything else is refused."""
    if end in (None, entry.end_time) and quality in (domain.NOT_RATED, entry.quality):
        return entry
    raise FailedPrecondition(
        f"This night is already recorded (it ended at {entry.end_time:%Y-%m-%dT%H:%M:%SZ}); "
        "change it with UpdateSleepEntry instead."
    )


def state(entry: EntryRow) -> ev.SleepEntryState:
    """An entry as events carry it."""
    carried = ev.SleepEntryState(
        entry_id=entry.id, user_id=entry.user_id, revision=entry.revision, **shared_fields(entry)
    )
    if entry.recorded_at is not None:
        carried.record_time.CopyFrom(timestamp(entry.recorded_at))
    return carried


def shared_fields(entry: EntryRow) -> dict:
    """The fields the API's SleepEntry and the events' SleepEntryState both have, as protos;
    an unfinished night has no end, duration or sleep date."""
    fields = {
        "start_time": timestamp(entry.start_time),
        "time_zone": entry.time_zone,
        "quality": entry.quality,
        "note": entry.note,
        "tags": entry.tags,
        "create_time": timestamp(entry.created_at),
        "update_time": timestamp(entry.updated_at),
    }
    if entry.recorded:
        fields["end_time"] = timestamp(entry.end_time)
        fields["duration"] = duration(entry.night.duration)
        fields["sleep_date"] = entry.sleep_date.isoformat()
    return fields
