"""Deleted accounts stay deleted: the record every consumer honours, replays included.

The event log is kept forever (read models are rebuilt from it), so it still
holds a deleted account's nights, follows and profile. Encrypting personal
fields per user and destroying the key would also do; a deletion record is
simpler to reason about and needs no key service: when a service applies
UserDeleted it forgets the user and records them in `deleted_users`, which
no replay empties. From then on the kit's consumer runners skip every event
that names a deleted user (`user_id`, `follower_id`, `followee_id` anywhere
in it), for the first time or on a replay, so nothing of theirs comes back.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from sqlalchemy import any_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.tables import deleted_users

#: The fields through which an event names a user.
USER_FIELDS = frozenset({"user_id", "follower_id", "followee_id"})


def users_named(message: Message) -> set[str]:
    """Every user id `message` names, nested messages included."""
    strings, nested = _fields_naming_users(message.DESCRIPTOR)
    found = {value for name in strings if (value := getattr(message, name))}
    for name, repeated in nested:
        if repeated:
            for item in getattr(message, name):
                found |= users_named(item)
        elif message.HasField(name):
            found |= users_named(getattr(message, name))
    return found


@functools.cache
def _fields_naming_users(descriptor: Descriptor) -> tuple[list[str], list[tuple[str, bool]]]:
    """A message type's singular string fields named in USER_FIELDS, and its message fields
    (name, repeated) but maps (an event's properties: strings that name nobody)."""
    strings, nested = [], []
    for field in descriptor.fields:
        repeated = field.is_repeated
        if field.message_type is not None:
            if not field.message_type.GetOptions().map_entry:
                nested.append((field.name, repeated))
        elif field.name in USER_FIELDS and field.type == field.TYPE_STRING and not repeated:
            strings.append(field.name)
    return strings, nested


async def erased(session: AsyncSession, user_ids: Iterable[str]) -> set[str]:
    """Those of `user_ids` whose accounts were deleted."""
    ids = list(set(user_ids))
    if not ids:
        return set()
    rows = await session.scalars(
        select(deleted_users.c.user_id).where(deleted_users.c.user_id == any_(ids))
    )
    return set(rows)


async def record(session: AsyncSession, user_id: str) -> None:
    """`user_id` is deleted, for good (idempotent)."""
    await session.execute(pg_insert(deleted_users).values(user_id=user_id).on_conflict_do_nothing())
