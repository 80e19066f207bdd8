"""The user service's tables and the queries over them (SQLAlchemy Core, async).

Every function takes the session of the caller's transaction (the unit of
work, services.kit.db); none commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.db import delete_if_present, insert_if_absent
from services.user.sessions import RefreshRow

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("username", Text, nullable=False),
    Column("username_key", Text, nullable=False, unique=True),
    Column("email", Text, nullable=False),
    Column("email_key", Text, nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("bio", Text, nullable=False, server_default=""),
    Column("time_zone", Text, nullable=False),
    Column("sleep_goal_seconds", Integer, nullable=False),
    Column("follower_count", BigInteger, nullable=False, server_default="0"),
    Column("following_count", BigInteger, nullable=False, server_default="0"),
    Column("celebrity", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Granted by an operator (python -m services.user.roles), carried in the access token.
    Column("roles", ARRAY(Text), nullable=False, server_default="{}"),
    # services.kit.visibility
    Column("nights_visible_to", Text, nullable=False, server_default="followers"),
    Column("approve_followers", Boolean, nullable=False, server_default="false"),
    Column("show_on_global_boards", Boolean, nullable=False, server_default="false"),
)

follows = Table(
    "follows",
    metadata,
    Column("follower_id", UUID(as_uuid=False), ForeignKey("users.id"), primary_key=True),
    Column("followee_id", UUID(as_uuid=False), ForeignKey("users.id"), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("follows_by_followee", "followee_id", "created_at", "follower_id"),
    Index("follows_by_follower", "follower_id", "created_at", "followee_id"),
)

#: Asked to follow an account that approves its followers, and not answered yet.
follow_requests = Table(
    "follow_requests",
    metadata,
    Column("followee_id", UUID(as_uuid=False), ForeignKey("users.id"), primary_key=True),
    Column("requester_id", UUID(as_uuid=False), ForeignKey("users.id"), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("follow_requests_by_followee", "followee_id", "created_at", "requester_id"),
    Index("follow_requests_by_requester", "requester_id"),
)

#: One per log-in (services.user.sessions); ended by log-out, reuse or a password change.
sessions = Table(
    "sessions",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("user_id", UUID(as_uuid=False), ForeignKey("users.id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("ended_at", DateTime(timezone=True)),
    Column("ended_why", Text),
    Index("sessions_by_user", "user_id"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("digest", Text, primary_key=True),
    Column(
        "session_id",
        UUID(as_uuid=False),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used", Boolean, nullable=False, server_default="false"),
    Index("refresh_tokens_by_session", "session_id", "expires_at"),
)


@dataclass(frozen=True)
class UserRow:
    id: str
    username: str
    email: str
    password_hash: str
    display_name: str
    bio: str
    time_zone: str
    sleep_goal_seconds: int
    follower_count: int
    following_count: int
    celebrity: bool
    created_at: datetime
    updated_at: datetime
    roles: list[str]
    nights_visible_to: str
    approve_followers: bool
    show_on_global_boards: bool


_USER_COLUMNS = [users.c[name] for name in UserRow.__dataclass_fields__]


class Taken(Exception):
    """A unique column already holds the value; `field` is username or email."""

    def __init__(self, field: str):
        super().__init__(field)
        self.field = field


async def insert_user(
    session: AsyncSession,
    *,
    username: str,
    username_key: str,
    email: str,
    email_key: str,
    password_hash: str,
    display_name: str,
    time_zone: str,
    sleep_goal_seconds: int,
) -> UserRow:
    """Raises Taken when the username or email is in use (decided by the unique indexes)."""
    try:
        async with session.begin_nested():
            row = (
                await session.execute(
                    insert(users)
                    .values(
                        id=str(uuid.uuid4()),
                        username=username,
                        username_key=username_key,
                        email=email,
                        email_key=email_key,
                        password_hash=password_hash,
                        display_name=display_name,
                        time_zone=time_zone,
                        sleep_goal_seconds=sleep_goal_seconds,
                    )
                    .returning(*_USER_COLUMNS)
                )
            ).one()
    except IntegrityError as error:
        raise Taken("email" if "email_key" in str(error.orig) else "username") from None
    return UserRow(*row)


async def find_by_username(
    session: AsyncSession, username_key: str, for_update: bool = False
) -> UserRow | None:
    query = select(*_USER_COLUMNS).where(users.c.username_key == username_key)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return UserRow(*row) if row else None


async def find_by_id(
    session: AsyncSession, user_id: str, for_update: bool = False
) -> UserRow | None:
    query = select(*_USER_COLUMNS).where(users.c.id == user_id)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return UserRow(*row) if row else None


async def find_for_login(session: AsyncSession, key: str) -> UserRow | None:
    """By username or by email, both compared casefolded."""
    query = select(*_USER_COLUMNS).where(or_(users.c.username_key == key, users.c.email_key == key))
    row = (await session.execute(query)).first()
    return UserRow(*row) if row else None


async def update_profile(session: AsyncSession, user_id: str, values: dict) -> UserRow:
    row = (
        await session.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(**values, updated_at=func.now())
            .returning(*_USER_COLUMNS)
        )
    ).one()
    return UserRow(*row)


async def lock_pair(session: AsyncSession, a: str, b: str) -> dict[str, UserRow]:
    """Lock two users' rows in id order, so concurrent A→B and B→A follows cannot deadlock."""
    rows = (
        await session.execute(
            select(*_USER_COLUMNS)
            .where(users.c.id.in_([a, b]))
            .order_by(users.c.id)
            .with_for_update()
        )
    ).all()
    return {row.id: UserRow(*row) for row in rows}


async def add_follow(session: AsyncSession, follower_id: str, followee_id: str) -> bool:
    """True if the follow is new (False if it existed: following is idempotent)."""
    return await insert_if_absent(
        session, follows, follower_id=follower_id, followee_id=followee_id
    )


async def remove_follow(session: AsyncSession, follower_id: str, followee_id: str) -> bool:
    """True if there was a follow to remove."""
    return await delete_if_present(
        session, follows, follower_id=follower_id, followee_id=followee_id
    )


async def is_following(session: AsyncSession, follower_id: str, followee_id: str) -> bool:
    query = select(literal(1)).where(
        follows.c.follower_id == follower_id, follows.c.followee_id == followee_id
    )
    return (await session.execute(query)).first() is not None


async def add_request(session: AsyncSession, requester_id: str, followee_id: str) -> bool:
    """True if the request is new (asking again is idempotent)."""
    return await insert_if_absent(
        session, follow_requests, requester_id=requester_id, followee_id=followee_id
    )


async def remove_request(session: AsyncSession, requester_id: str, followee_id: str) -> bool:
    """True if there was a request to remove."""
    return await delete_if_present(
        session, follow_requests, requester_id=requester_id, followee_id=followee_id
    )


async def count_requests_by(session: AsyncSession, requester_id: str) -> int:
    query = select(func.count()).where(follow_requests.c.requester_id == requester_id)
    return (await session.execute(query)).scalar_one()


async def list_requests(
    session: AsyncSession, followee_id: str, limit: int, after: tuple[datetime, str] | None
) -> list[tuple[UserRow, datetime]]:
    """Who asked to follow `followee_id`, oldest first; keyset on (asked at, requester id)."""
    query = (
        select(*_USER_COLUMNS, follow_requests.c.created_at.label("asked_at"))
        .join(users, users.c.id == follow_requests.c.requester_id)
        .where(follow_requests.c.followee_id == followee_id)
        .order_by(follow_requests.c.created_at, follow_requests.c.requester_id)
        .limit(limit)
    )
    if after is not None:
        cursor = tuple_(
            literal(after[0], DateTime(timezone=True)), literal(after[1], UUID(as_uuid=False))
        )
        query = query.where(
            tuple_(follow_requests.c.created_at, follow_requests.c.requester_id) > cursor
        )
    rows = (await session.execute(query)).all()
    return [(UserRow(*row[:-1]), row[-1]) for row in rows]


async def change_counts(
    session: AsyncSession, follower_id: str, followee_id: str, delta: int
) -> tuple[UserRow, UserRow]:
    """Add `delta` to the followee's follower count and the follower's following count."""
    followee = await session.execute(
        update(users)
        .where(users.c.id == followee_id)
        .values(follower_count=users.c.follower_count + delta)
        .returning(*_USER_COLUMNS)
    )
    followee_row = UserRow(*followee.one())
    follower = await session.execute(
        update(users)
        .where(users.c.id == follower_id)
        .values(following_count=users.c.following_count + delta)
        .returning(*_USER_COLUMNS)
    )
    return UserRow(*follower.one()), followee_row


async def set_celebrity(session: AsyncSession, user_id: str, celebrity: bool) -> None:
    await session.execute(update(users).where(users.c.id == user_id).values(celebrity=celebrity))


async def list_follows(
    session: AsyncSession,
    user_id: str,
    direction: str,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[tuple[UserRow, datetime]]:
    """Followers (direction "followers") or followees ("following") of `user_id`, newest first.

    Keyset pagination on (follow time, other user's id): stable while follows come and go.
    """
    mine, other = (
        (follows.c.followee_id, follows.c.follower_id)
        if direction == "followers"
        else (follows.c.follower_id, follows.c.followee_id)
    )
    query = (
        select(*_USER_COLUMNS, follows.c.created_at.label("followed_at"))
        .join(users, users.c.id == other)
        .where(mine == user_id)
        .order_by(follows.c.created_at.desc(), other.desc())
        .limit(limit)
    )
    if after is not None:
        cursor = tuple_(
            literal(after[0], DateTime(timezone=True)), literal(after[1], UUID(as_uuid=False))
        )
        query = query.where(tuple_(follows.c.created_at, other) < cursor)
    rows = (await session.execute(query)).all()
    return [(UserRow(*row[:-1]), row[-1]) for row in rows]


async def change_role(session: AsyncSession, username_key: str, role: str, held: bool) -> bool:
    """Grant (held) or revoke `role`; False if there is no such user."""
    roles = (
        func.array_append(func.array_remove(users.c.roles, role), role)
        if held
        else func.array_remove(users.c.roles, role)
    )
    row = await session.execute(
        update(users)
        .where(users.c.username_key == username_key)
        .values(roles=roles)
        .returning(users.c.id)
    )
    return row.first() is not None


async def start_session(session: AsyncSession, user_id: str) -> str:
    session_id = str(uuid.uuid4())
    await session.execute(insert(sessions).values(id=session_id, user_id=user_id))
    return session_id


async def add_refresh_token(
    session: AsyncSession, session_id: str, digest: str, expires_at: datetime
) -> None:
    await session.execute(
        insert(refresh_tokens).values(digest=digest, session_id=session_id, expires_at=expires_at)
    )


async def find_refresh_token(session: AsyncSession, digest: str) -> RefreshRow | None:
    """The token and its session's state, the token's row locked (two refreshes with one
    token take turns: the second finds it used)."""
    row = (
        await session.execute(
            select(
                refresh_tokens.c.session_id,
                sessions.c.user_id,
                refresh_tokens.c.expires_at,
                refresh_tokens.c.used,
                sessions.c.ended_at.is_not(None),
            )
            .join(sessions, sessions.c.id == refresh_tokens.c.session_id)
            .where(refresh_tokens.c.digest == digest)
            .with_for_update(of=refresh_tokens)
        )
    ).first()
    return RefreshRow(str(row[0]), str(row[1]), row[2], row[3], row[4]) if row else None


async def use_refresh_token(session: AsyncSession, digest: str, now: datetime) -> None:
    """Mark it used, and forget the session's tokens that have expired (used or not, they
    refresh nothing now): a session keeps the tokens of one refresh lifetime at most."""
    await session.execute(
        update(refresh_tokens).where(refresh_tokens.c.digest == digest).values(used=True)
    )
    owner = select(refresh_tokens.c.session_id).where(refresh_tokens.c.digest == digest)
    await session.execute(
        delete(refresh_tokens).where(
            refresh_tokens.c.session_id == owner.scalar_subquery(),
            refresh_tokens.c.expires_at < now,
        )
    )


async def end_sessions(
    session: AsyncSession,
    user_id: str,
    why: str,
    *,
    only: str | None = None,
    keep: str | None = None,
) -> int:
    """End the user's open sessions (`only` one, or all but `keep`) and delete their refresh
    tokens; returns how many ended."""
    query = update(sessions).where(sessions.c.user_id == user_id, sessions.c.ended_at.is_(None))
    if only is not None:
        query = query.where(sessions.c.id == only)
    if keep:
        query = query.where(sessions.c.id != keep)
    ended = (
        (
            await session.execute(
                query.values(ended_at=func.now(), ended_why=why).returning(sessions.c.id)
            )
        )
        .scalars()
        .all()
    )
    if ended:
        await session.execute(delete(refresh_tokens).where(refresh_tokens.c.session_id.in_(ended)))
    return len(ended)


async def forget_sessions(session: AsyncSession, user_id: str, ended_before: datetime) -> None:
    """Delete the user's sessions that ended before `ended_before`, and those left open whose
    refresh tokens have all expired (abandoned): an account keeps its live sessions and the
    recently ended ones, whatever how often it logs in."""
    live = select(literal(1)).where(
        refresh_tokens.c.session_id == sessions.c.id, refresh_tokens.c.expires_at > func.now()
    )
    await session.execute(
        delete(sessions).where(
            sessions.c.user_id == user_id,
            or_(
                sessions.c.ended_at < ended_before,
                sessions.c.ended_at.is_(None) & ~live.exists(),
            ),
        )
    )


async def set_password(session: AsyncSession, user_id: str, password_hash: str) -> None:
    await session.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(password_hash=password_hash, updated_at=func.now())
    )


async def replace_password_hash(session: AsyncSession, user_id: str, old: str, new: str) -> None:
    """The same password hashed anew, unless the password changed since `old` was read."""
    await session.execute(
        update(users)
        .where(users.c.id == user_id, users.c.password_hash == old)
        .values(password_hash=new)
    )


async def forget_user(session: AsyncSession, user_id: str) -> list[UserRow] | None:
    """Delete the user, their follows both ways (the others' counts follow), their follow
    requests both ways and their sessions; returns the accounts they followed, as now
    (None if the user is gone already)."""
    followed = select(follows.c.followee_id).where(follows.c.follower_id == user_id)
    following = select(follows.c.follower_id).where(follows.c.followee_id == user_id)
    locked = await session.scalars(  # theirs and the others' rows in id order, as lock_pair
        select(users.c.id)
        .where(or_(users.c.id == user_id, users.c.id.in_(followed), users.c.id.in_(following)))
        .order_by(users.c.id)
        .with_for_update()
    )
    if user_id not in {str(i) for i in locked}:
        return None
    await session.execute(
        update(users)
        .where(users.c.id.in_(following))
        .values(following_count=users.c.following_count - 1)
    )
    followees = await session.execute(
        update(users)
        .where(users.c.id.in_(followed))
        .values(follower_count=users.c.follower_count - 1)
        .returning(*_USER_COLUMNS)
    )
    rows = [UserRow(*row) for row in followees]
    await session.execute(
        delete(follows).where(
            or_(follows.c.follower_id == user_id, follows.c.followee_id == user_id)
        )
    )
    await session.execute(
        delete(follow_requests).where(
            or_(follow_requests.c.requester_id == user_id, follow_requests.c.followee_id == user_id)
        )
    )
    await session.execute(delete(sessions).where(sessions.c.user_id == user_id))
    await session.execute(delete(users).where(users.c.id == user_id))
    return rows
