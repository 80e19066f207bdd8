"""The sleep service's tables and the queries over them (SQLAlchemy Core, async).

Every function takes the session of the caller's transaction (the unit of
work, services.kit.db); none commits. The database, not the code, has the last
word on overlaps and open nights: an exclusion constraint refuses two
overlapping recorded nights of one user, and a unique index a second open
night, even when two requests race.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    Date,
    DateTime,
    MetaData,
    SmallInteger,
    Table,
    Text,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.db import delete_if_present, insert_if_absent
from services.sleep.domain import Night, State

metadata = MetaData()

sleep_entries = Table(
    "sleep_entries",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("user_id", UUID(as_uuid=False), nullable=False),
    Column("start_time", DateTime(timezone=True), nullable=False),
    Column("end_time", DateTime(timezone=True)),  # none while open or abandoned
    Column("time_zone", Text, nullable=False),
    Column("sleep_date", Date),  # as end_time
    Column("quality", SmallInteger, nullable=False),
    Column("note", Text, nullable=False),
    Column("tags", ARRAY(Text), nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("state", Text, nullable=False, server_default=State.RECORDED.value),
    Column("planned_end_time", DateTime(timezone=True)),
    #: When it became a recorded night (created so, or finished): where feeds place it.
    Column("recorded_at", DateTime(timezone=True)),
    #: What lists order by: the end, or the start of a night without one.
    Column("list_time", DateTime(timezone=True), Computed("coalesce(end_time, start_time)")),
)

#: Request ids of idempotent creates. Kept after the entry is deleted, so a late retry
#: cannot bring a deleted night back; swept ZENTRY_SLEEP_REQUEST_RETENTION_DAYS after
#: they were made (services.sleep.config says what a retry gets after that).
create_requests = Table(
    "create_requests",
    metadata,
    Column("user_id", UUID(as_uuid=False), primary_key=True),
    Column("request_id", Text, primary_key=True),
    Column("entry_id", UUID(as_uuid=False), nullable=False),
    Column("fingerprint", Text, nullable=False),
)

#: The sleep service's copy of who the users are (services.sleep.directory).
users = Table(
    "users",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("username", Text, nullable=False),
    Column("username_key", Text, nullable=False),
    Column("time_zone", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("nights_visible_to", Text, nullable=False, server_default="followers"),
)

#: The sleep service's copy of who follows whom (services.sleep.directory).
follows = Table(
    "follows",
    metadata,
    Column("follower_id", UUID(as_uuid=False), primary_key=True),
    Column("followee_id", UUID(as_uuid=False), primary_key=True),
)


@dataclass(frozen=True)
class EntryRow:
    id: str
    user_id: str
    start_time: datetime
    end_time: datetime | None
    time_zone: str
    sleep_date: date | None
    quality: int
    note: str
    tags: list[str]
    revision: int
    created_at: datetime
    updated_at: datetime
    state: State
    planned_end_time: datetime | None
    recorded_at: datetime | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", State(self.state))

    @property
    def recorded(self) -> bool:
        return self.state == State.RECORDED

    @property
    def list_time(self) -> datetime:
        """Where lists place it: by its end, or its start while it has none."""
        return self.end_time or self.start_time

    @property
    def night(self) -> Night:
        """The recorded night (only a RECORDED entry has one)."""
        assert self.end_time is not None, f"entry {self.id} is {self.state}: it has no end"
        return Night(
            self.start_time,
            self.end_time,
            self.time_zone,
            self.quality,
            self.note,
            tuple(self.tags),
        )


@dataclass(frozen=True)
class UserRow:
    id: str
    username: str
    time_zone: str


_ENTRY_COLUMNS = [sleep_entries.c[name] for name in EntryRow.__dataclass_fields__]


class Overlap(Exception):
    """The exclusion constraint refused a night that overlaps another of the same user."""


class AlreadyOpen(Exception):
    """The unique index refused a second open night of the same user."""


def _night_values(night: Night) -> dict:
    return {
        "start_time": night.start,
        "end_time": night.end,
        "time_zone": night.time_zone,
        "sleep_date": night.sleep_date,
        "quality": night.quality,
        "note": night.note,
        "tags": list(night.tags),
    }


async def insert_entry(
    session: AsyncSession, entry_id: str, user_id: str, night: Night
) -> EntryRow:
    """Raises Overlap if another of the user's nights overlaps this one; the transaction
    can then only roll back."""
    statement = (
        insert(sleep_entries)
        .values(
            id=entry_id, user_id=user_id, revision=1, recorded_at=func.now(), **_night_values(night)
        )
        .returning(*_ENTRY_COLUMNS)
    )
    return await _write_night(session, statement)


async def insert_open(
    session: AsyncSession,
    entry_id: str,
    user_id: str,
    start: datetime,
    time_zone: str,
    planned_end: datetime | None,
) -> EntryRow:
    """A night started live; raises AlreadyOpen if the user has one open already."""
    statement = (
        insert(sleep_entries)
        .values(
            id=entry_id,
            user_id=user_id,
            start_time=start,
            time_zone=time_zone,
            quality=0,
            note="",
            tags=[],
            revision=1,
            state=State.OPEN,
            planned_end_time=planned_end,
        )
        .returning(*_ENTRY_COLUMNS)
    )
    return await _write_night(session, statement)


async def update_entry(session: AsyncSession, entry_id: str, night: Night) -> EntryRow:
    """Replace the night's facts, record it (if it was not) and bump the revision; raises
    Overlap like insert_entry."""
    statement = (
        update(sleep_entries)
        .where(sleep_entries.c.id == entry_id)
        .values(
            **_night_values(night),
            state=State.RECORDED,
            recorded_at=func.coalesce(sleep_entries.c.recorded_at, func.now()),
            revision=sleep_entries.c.revision + 1,
            updated_at=func.now(),
        )
        .returning(*_ENTRY_COLUMNS)
    )
    return await _write_night(session, statement)


async def update_details(
    session: AsyncSession, entry_id: str, time_zone: str, quality: int, note: str, tags: tuple
) -> EntryRow:
    """Change what an unfinished night says about itself (not its times); bump the revision."""
    statement = (
        update(sleep_entries)
        .where(sleep_entries.c.id == entry_id)
        .values(
            time_zone=time_zone,
            quality=quality,
            note=note,
            tags=list(tags),
            revision=sleep_entries.c.revision + 1,
            updated_at=func.now(),
        )
        .returning(*_ENTRY_COLUMNS)
    )
    return EntryRow(*(await session.execute(statement)).one())


async def abandon_overdue(
    session: AsyncSession, started_before: datetime, limit: int, user_id: str | None = None
) -> list[EntryRow]:
    """Close up to `limit` nights open since before `started_before` as abandoned (of one
    user, if given); rows another transaction holds are left for the next sweep."""
    overdue = (
        select(sleep_entries.c.id)
        .where(
            sleep_entries.c.state == State.OPEN,
            sleep_entries.c.start_time < started_before,
        )
        .order_by(sleep_entries.c.start_time)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if user_id is not None:
        overdue = overdue.where(sleep_entries.c.user_id == user_id)
    statement = (
        update(sleep_entries)
        .where(sleep_entries.c.id.in_(overdue.scalar_subquery()))
        .values(
            state=State.ABANDONED,
            revision=sleep_entries.c.revision + 1,
            updated_at=func.now(),
        )
        .returning(*_ENTRY_COLUMNS)
    )
    return [EntryRow(*row) for row in (await session.execute(statement)).all()]


async def open_night_of(session: AsyncSession, user_id: str) -> EntryRow | None:
    query = select(*_ENTRY_COLUMNS).where(
        sleep_entries.c.user_id == user_id, sleep_entries.c.state == State.OPEN
    )
    row = (await session.execute(query)).first()
    return EntryRow(*row) if row else None


async def _write_night(session: AsyncSession, statement) -> EntryRow:
    """No savepoint: after an Overlap the transaction is over (the caller names the other
    night in a new one), so the usual write costs one statement, not three."""
    try:
        row = (await session.execute(statement)).one()
    except IntegrityError as error:
        if "no_overlapping_nights" in str(error.orig):
            raise Overlap() from None
        if "one_open_night" in str(error.orig):
            raise AlreadyOpen() from None
        raise
    return EntryRow(*row)


async def find_overlap(
    session: AsyncSession, user_id: str, night: Night, except_id: str | None = None
) -> EntryRow | None:
    """The earliest of the user's recorded entries overlapping `night` (touching ends do
    not overlap)."""
    query = (
        select(*_ENTRY_COLUMNS)
        .where(
            sleep_entries.c.user_id == user_id,
            sleep_entries.c.state == State.RECORDED,
            sleep_entries.c.start_time < night.end,
            sleep_entries.c.end_time > night.start,
        )
        .order_by(sleep_entries.c.start_time)
        .limit(1)
    )
    if except_id is not None:
        query = query.where(sleep_entries.c.id != except_id)
    row = (await session.execute(query)).first()
    return EntryRow(*row) if row else None


async def get_entry(
    session: AsyncSession, entry_id: str, for_update: bool = False
) -> EntryRow | None:
    query = select(*_ENTRY_COLUMNS).where(sleep_entries.c.id == entry_id)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return EntryRow(*row) if row else None


async def delete_entry(session: AsyncSession, entry_id: str) -> None:
    await session.execute(delete(sleep_entries).where(sleep_entries.c.id == entry_id))


async def list_entries(
    session: AsyncSession,
    user_id: str,
    first: date | None,
    last: date | None,
    limit: int,
    after: tuple[datetime, str] | None,
    unfinished: bool = False,
) -> list[EntryRow]:
    """The user's recorded entries with a sleep date in [first, last], newest (latest end)
    first; `unfinished` adds the open and abandoned ones, by their start.

    Keyset pagination on (list time, id): stable while entries come and go.
    """
    listed = sleep_entries.c.list_time
    query = (
        select(*_ENTRY_COLUMNS)
        .where(sleep_entries.c.user_id == user_id)
        .order_by(listed.desc(), sleep_entries.c.id.desc())
        .limit(limit)
    )
    if not unfinished:
        query = query.where(sleep_entries.c.state == State.RECORDED)
    if first is not None:
        query = query.where(sleep_entries.c.sleep_date >= first)
    if last is not None:
        query = query.where(sleep_entries.c.sleep_date <= last)
    if after is not None:
        cursor = tuple_(
            literal(after[0], DateTime(timezone=True)), literal(after[1], UUID(as_uuid=False))
        )
        query = query.where(tuple_(listed, sleep_entries.c.id) < cursor)
    return [EntryRow(*row) for row in (await session.execute(query)).all()]


async def claim_request(
    session: AsyncSession, user_id: str, request_id: str, entry_id: str, fingerprint: str
) -> tuple[str, str] | None:
    """Record that `request_id` creates `entry_id`; None if new, else the first claim.

    The first claim is returned as (entry id, fingerprint).

    A concurrent claim of the same id waits here until the first transaction ends.
    """
    claimed = await session.execute(
        pg_insert(create_requests)
        .values(user_id=user_id, request_id=request_id, entry_id=entry_id, fingerprint=fingerprint)
        .on_conflict_do_nothing()
        .returning(create_requests.c.entry_id)
    )
    if claimed.first() is not None:
        return None
    row = (
        await session.execute(
            select(create_requests.c.entry_id, create_requests.c.fingerprint).where(
                create_requests.c.user_id == user_id, create_requests.c.request_id == request_id
            )
        )
    ).one()
    return row.entry_id, row.fingerprint


async def save_user(
    session: AsyncSession, user_id: str, username: str, time_zone: str, nights_visible_to: str
) -> None:
    """Insert or replace the directory's copy of a user."""
    values = {
        "username": username,
        "username_key": username.casefold(),
        "time_zone": time_zone,
        "nights_visible_to": nights_visible_to,
        "updated_at": func.now(),
    }
    await session.execute(
        pg_insert(users)
        .values(id=user_id, **values)
        .on_conflict_do_update(index_elements=[users.c.id], set_=values)
    )


async def find_user(session: AsyncSession, user_id: str) -> UserRow | None:
    row = (
        await session.execute(
            select(users.c.id, users.c.username, users.c.time_zone).where(users.c.id == user_id)
        )
    ).first()
    return UserRow(*row) if row else None


async def find_user_by_username(session: AsyncSession, username: str) -> UserRow | None:
    row = (
        await session.execute(
            select(users.c.id, users.c.username, users.c.time_zone).where(
                users.c.username_key == username.casefold()
            )
        )
    ).first()
    return UserRow(*row) if row else None


async def set_follow(session: AsyncSession, follower_id: str, followee_id: str, on: bool) -> None:
    """The copy of one follow, made to exist (`on`) or not; idempotent."""
    change = insert_if_absent if on else delete_if_present
    await change(session, follows, follower_id=follower_id, followee_id=followee_id)


async def audience_of(session: AsyncSession, viewer_id: str, owner_id: str) -> tuple[str, bool]:
    """The owner's `nights_visible_to` ("" if the copy does not know them yet) and whether
    `viewer_id` follows them, in one query."""
    following = (
        select(literal(True))
        .where(follows.c.follower_id == viewer_id, follows.c.followee_id == owner_id)
        .exists()
    )
    setting = select(users.c.nights_visible_to).where(users.c.id == owner_id).scalar_subquery()
    row = (await session.execute(select(func.coalesce(setting, ""), following))).one()
    return row[0], row[1]


async def forget_user(session: AsyncSession, user_id: str) -> None:
    """Everything the sleep service keeps of a user: nights, create requests, the copies."""
    await session.execute(delete(sleep_entries).where(sleep_entries.c.user_id == user_id))
    await session.execute(delete(create_requests).where(create_requests.c.user_id == user_id))
    await session.execute(
        delete(follows).where(
            (follows.c.follower_id == user_id) | (follows.c.followee_id == user_id)
        )
    )
    await session.execute(delete(users).where(users.c.id == user_id))
