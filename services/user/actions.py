"""What the user service does, one method of `UserActions` per use case: domain rules +
store + events.

Each action runs in one transaction (the unit of work), writes its events to
the outbox in that same transaction, and raises the kit's DomainErrors. Nothing
here knows about gRPC.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf import duration_pb2
from zentry.events.v1 import user_events_pb2 as ev

from services.kit import visibility
from services.kit.auth import Caller
from services.kit.db import Database
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from services.kit.events import USER_EVENTS
from services.kit.outbox import Outbox
from services.user import domain, sessions, store
from services.user.domain import CelebrityRule
from services.user.login_guard import LoginGuard
from services.user.nights import SleepNights
from services.user.passwords import Passwords
from services.user.store import UserRow
from services.user.tokens import TokenIssuer

_log = logging.getLogger(__name__)

WRONG_CREDENTIALS = "Wrong username or password."
#: A list the owner's setting keeps from the caller: the same words whatever the setting.
HIDDEN = "This account shares its follows only with the people it lets see its nights."


#: Followers (and requests) an export lists at most; following is capped lower anyway.
EXPORT_MOST = 10_000


@dataclass(frozen=True)
class Export:
    profile: UserRow
    nights: list
    following: list[str]
    followers: list[str]
    followers_truncated: bool
    requests: list[tuple[UserRow, datetime]]


#: Every refused refresh says the same: the client's way on is to log in.
REFRESH_REFUSED = "The refresh token is not valid (used, expired or logged out); log in again."


@dataclass(frozen=True)
class NewSession:
    token: str
    expires: datetime
    user: UserRow
    refresh_token: str
    refresh_expires: datetime


class UserActions:
    def __init__(
        self,
        db: Database,
        issuer: TokenIssuer,
        guard: LoginGuard,
        rule: CelebrityRule,
        max_following: int,
        passwords: Passwords,
        nights: SleepNights,
        refresh_ttl: timedelta = timedelta(days=30),
    ):
        self._db = db
        self._issuer = issuer
        self._guard = guard
        self._rule = rule
        self._max_following = max_following
        self._passwords = passwords
        self._refresh_ttl = refresh_ttl
        self._nights = nights
        self._outbox = Outbox(USER_EVENTS, producer="user")

    @property
    def issuer(self) -> TokenIssuer:
        return self._issuer

    async def register(
        self, username: str, email: str, password: str, display_name: str, time_zone: str
    ) -> UserRow:
        username = domain.check_username(username)
        email = domain.check_email(email)
        domain.check_password(password, username)
        display_name = domain.check_display_name(display_name) or username
        time_zone = domain.check_time_zone(time_zone)
        password_hash = await self._passwords.hash(password)
        async with self._db.transaction() as session:
            try:
                user = await store.insert_user(
                    session,
                    username=username,
                    username_key=domain.username_key(username),
                    email=email,
                    email_key=domain.email_key(email),
                    password_hash=password_hash,
                    display_name=display_name,
                    time_zone=time_zone,
                    sleep_goal_seconds=int(domain.DEFAULT_SLEEP_GOAL.total_seconds()),
                )
            except store.Taken as taken:
                value = username if taken.field == "username" else email
                raise AlreadyExists(f"{taken.field} {value!r} is already taken") from None
            await self._outbox.add(session, ev.UserRegistered(profile=event_profile(user)), user.id)
        return user

    async def log_in(self, account: str, password: str, address: str) -> NewSession:
        """Same answer for a wrong password and an unknown account; 429 after too many tries."""
        account = account.strip()
        if not account or not password:
            raise Unauthenticated(WRONG_CREDENTIALS)
        async with self._db.transaction() as session:
            user = await store.find_for_login(session, account.casefold())
        if not await self._checked(user, account, password, address):
            raise Unauthenticated(WRONG_CREDENTIALS)
        upgraded = await self._upgraded_hash(user.password_hash, password)
        async with self._db.transaction() as session:
            if upgraded:
                await store.replace_password_hash(session, user.id, user.password_hash, upgraded)
            ended_before = datetime.now(UTC) - self._refresh_ttl
            await store.forget_sessions(session, user.id, ended_before)
            session_id = await store.start_session(session, user.id)
            return await self._next_tokens(session, user, session_id)

    async def _checked(self, user: UserRow | None, typed: str, password: str, address: str) -> bool:
        """Whether `password` is `user`'s, counted by the log-in guard (429 after too many)."""
        counted_as = user.id if user else typed  # the account, whichever name was typed
        await self._guard.attempt(counted_as, address)
        try:
            right = await self._passwords.matches(
                user.password_hash if user else None, password, counted_as
            )
        except ResourceExhausted:
            await self._guard.unchecked(counted_as, address)
            raise
        if right:
            await self._guard.succeeded(counted_as, address)
        return right

    async def _upgraded_hash(self, password_hash: str, password: str) -> str | None:
        """A hash of today's parameters for a right `password` whose hash has others; None
        when it has today's, or when no hashing slot is free (a later log-in does it)."""
        if not self._passwords.outdated(password_hash):
            return None
        return await self._passwords.rehash(password)

    async def _next_tokens(self, session, user: UserRow, session_id: str) -> NewSession:
        """An access token of the session, and its next refresh token (stored in `session`)."""
        refresh = sessions.new_refresh_token()
        refresh_expires = datetime.now(UTC) + self._refresh_ttl
        await store.add_refresh_token(
            session, session_id, sessions.digest(refresh), refresh_expires
        )
        token, expires = self._issuer.issue(user.id, user.username, user.roles, session_id)
        return NewSession(token, expires, user, refresh, refresh_expires.replace(microsecond=0))

    async def refresh(self, token: str) -> NewSession:
        """The next tokens for a refresh token, which then stops working; a token used before
        ends its session (services.user.sessions)."""
        if not sessions.well_formed(token):
            raise Unauthenticated(REFRESH_REFUSED)
        digest, now = sessions.digest(token), datetime.now(UTC)
        async with self._db.transaction() as session:
            row = await store.find_refresh_token(session, digest)
            outcome = sessions.outcome(row, now)
            if outcome is sessions.Outcome.REUSED:  # committed, then refused
                await store.end_sessions(
                    session, row.user_id, "refresh token reused", only=row.session_id
                )
                _log.warning(
                    "a used refresh token came back: session %s ended",
                    row.session_id,
                    extra={"user": row.user_id},
                )
            if outcome is sessions.Outcome.ROTATE:
                user = await store.find_by_id(session, row.user_id)
                await store.use_refresh_token(session, digest, now)
                return await self._next_tokens(session, user, row.session_id)
        raise Unauthenticated(REFRESH_REFUSED)

    async def end_session(self, caller: Caller, name: str) -> None:
        """Log out: the caller's session ends (`current` is the only name one may give)."""
        if name != sessions.CURRENT:
            raise InvalidArgument.field("session", f"must be {sessions.CURRENT!r}")
        if not caller.session_id:
            return  # a token from before sessions: nothing to end
        async with self._db.transaction() as session:
            await store.end_sessions(session, caller.user_id, "logged out", only=caller.session_id)

    async def end_all_sessions(self, caller: Caller) -> None:
        """Log out everywhere: every session of the caller's account ends."""
        async with self._db.transaction() as session:
            await store.end_sessions(session, caller.user_id, "logged out everywhere")

    async def change_password(
        self, caller: Caller, username: str, current: str, new: str, address: str
    ) -> None:
        """A new password, given the current one; every other session ends. Wrong current
        passwords count with the log-in guard's, so a stolen token cannot guess them."""
        async with self._db.transaction() as session:
            me = await self._own(session, caller, username, "change the password of")
        domain.check_password(new, me.username, field="new_password")
        if not current or not await self._checked(me, me.id, current, address):
            raise InvalidArgument.field("current_password", "is not this account's password")
        password_hash = await self._passwords.hash(new)
        async with self._db.transaction() as session:
            await store.set_password(session, me.id, password_hash)
            await store.end_sessions(
                session, me.id, "password changed", keep=caller.session_id or None
            )

    async def get(self, caller: Caller, username: str) -> UserRow:
        async with self._db.transaction() as session:
            return await self._resolve(session, caller, username)

    async def update_profile(
        self, caller: Caller, username: str, changes: dict, paths: list[str]
    ) -> UserRow:
        """`changes` holds candidate values by field name; only `paths` are applied."""
        values: dict = {}
        for path in paths:
            value = changes[path]
            if path == "display_name":
                values["display_name"] = domain.check_display_name(value)
            elif path == "bio":
                values["bio"] = domain.check_bio(value)
            elif path == "time_zone":
                values["time_zone"] = domain.check_time_zone(value)
            elif path == "sleep_goal":
                values["sleep_goal_seconds"] = int(domain.check_sleep_goal(value).total_seconds())
            elif path == "nights_visible_to":
                values["nights_visible_to"] = visibility.check_audience(value)
            else:  # approve_followers, show_on_global_boards
                values[path] = bool(value)
        async with self._db.transaction() as session:
            me = await self._resolve(session, caller, username, for_update=True)
            if me.id != caller.user_id:
                raise PermissionDenied("You can only change your own profile.")
            if "display_name" in values and not values["display_name"]:
                values["display_name"] = me.username
            changed = [k for k, v in values.items() if getattr(me, k) != v]
            if not changed:
                return me
            user = await store.update_profile(session, me.id, {k: values[k] for k in changed})
            names = ["sleep_goal" if k == "sleep_goal_seconds" else k for k in changed]
            await self._outbox.add(
                session,
                ev.UserProfileUpdated(profile=event_profile(user), changed_fields=names),
                user.id,
            )
        return user

    async def follow(self, caller: Caller, username: str) -> tuple[UserRow, bool]:
        """The caller follows `username`, or asks to if it approves its followers; idempotent.
        Returns the followee with its counts, and whether a request waits for its answer."""
        async with self._db.transaction() as session:
            followee, locked = await self._pair(session, caller, username, "follow")
            if followee.approve_followers and not await store.is_following(
                session, caller.user_id, followee.id
            ):
                if await store.add_request(session, caller.user_id, followee.id):
                    following = locked[caller.user_id].following_count
                    asked = await store.count_requests_by(session, caller.user_id)
                    self._check_following(following + asked)
                return followee, True
            return await self._change_follow(session, caller.user_id, followee, True), False

    async def unfollow(self, caller: Caller, username: str) -> UserRow:
        """The caller stops following `username` and withdraws any request to; idempotent."""
        async with self._db.transaction() as session:
            followee, _ = await self._pair(session, caller, username, "unfollow")
            await store.remove_request(session, caller.user_id, followee.id)
            return await self._change_follow(session, caller.user_id, followee, False)

    async def delete_account(
        self, caller: Caller, username: str, password: str, address: str
    ) -> None:
        """The caller's account, and (through UserDeleted) everything derived from it."""
        async with self._db.transaction() as session:
            me = await self._own(session, caller, username, "delete")
        if not password or not await self._checked(me, me.id, password, address):
            raise InvalidArgument.field("password", "is not this account's password")
        async with self._db.transaction() as session:
            followees = await store.forget_user(session, me.id)
            if followees is None:
                return  # deleted meanwhile: a retry
            for followee in followees:
                await self._recheck_celebrity(session, followee)
            await self._outbox.add(session, ev.UserDeleted(user_id=me.id), me.id)
        _log.info("account deleted", extra={"user": me.id})

    async def export(self, caller: Caller, username: str) -> Export:
        """Everything kept about the caller (see UserExport)."""
        async with self._db.transaction() as session:
            me = await self._own(session, caller, username, "export")
            following = await store.list_follows(session, me.id, "following", EXPORT_MOST, None)
            followers = await store.list_follows(session, me.id, "followers", EXPORT_MOST + 1, None)
            asking = await store.list_requests(session, me.id, EXPORT_MOST, None)
        nights = await self._nights.of(caller)
        return Export(
            profile=me,
            nights=nights,
            following=[user.username for user, _ in following],
            followers=[user.username for user, _ in followers[:EXPORT_MOST]],
            followers_truncated=len(followers) > EXPORT_MOST,
            requests=asking,
        )

    async def remove_follower(self, caller: Caller, username: str, follower: str) -> None:
        """`follower` no longer follows the caller; idempotent."""
        async with self._db.transaction() as session:
            await self._own(session, caller, username, "remove the followers of")
            them, locked = await self._pair(session, caller, follower, "remove", "follower")
            await self._change_follow(session, them.id, locked[caller.user_id], False)

    async def list_requests(
        self, caller: Caller, username: str, limit: int, after: tuple[datetime, str] | None
    ) -> list[tuple[UserRow, datetime]]:
        """Requests to follow the caller, oldest first."""
        async with self._db.transaction() as session:
            me = await self._own(session, caller, username, "see the follow requests of")
            return await store.list_requests(session, me.id, limit, after)

    async def approve(self, caller: Caller, username: str, requester: str) -> UserRow:
        """`requester` follows the caller from now on; NotFound without a request."""
        async with self._db.transaction() as session:
            await self._own(session, caller, username, "approve follow requests to")
            asker, locked = await self._pair(session, caller, requester, "approve", "requester")
            if not await store.remove_request(session, asker.id, caller.user_id):
                if await store.is_following(session, asker.id, caller.user_id):
                    return asker  # approved before: a retry
                raise NotFound(f"{requester!r} has not asked to follow you.")
            me = locked[caller.user_id]
            await self._change_follow(session, asker.id, me, True)
            return await store.find_by_id(session, asker.id)

    async def reject(self, caller: Caller, username: str, requester: str) -> None:
        """`requester`'s request is turned down; idempotent."""
        async with self._db.transaction() as session:
            await self._own(session, caller, username, "reject follow requests to")
            asker = await self._resolve(session, caller, requester)
            await store.remove_request(session, asker.id, caller.user_id)

    async def cancel(self, caller: Caller, username: str, requester: str) -> None:
        """The caller withdraws their request to follow `username`; idempotent."""
        if requester != domain.ME and domain.username_key(requester) != domain.username_key(
            caller.username
        ):
            raise PermissionDenied("You can only withdraw your own follow requests.")
        async with self._db.transaction() as session:
            followee = await self._resolve(session, caller, username)
            await store.remove_request(session, caller.user_id, followee.id)

    async def _pair(
        self, session, caller: Caller, username: str, verb: str, field: str = "username"
    ) -> tuple[UserRow, dict[str, UserRow]]:
        """`username` and the caller, both rows locked (in id order, so that concurrent
        A→B and B→A cannot deadlock); InvalidArgument naming `field` for the caller."""
        other = await self._resolve(session, caller, username)
        if other.id == caller.user_id:
            raise InvalidArgument.field(field, f"you cannot {verb} yourself")
        locked = await store.lock_pair(session, caller.user_id, other.id)
        if caller.user_id not in locked:
            raise NotFound("Your account no longer exists.")
        return locked[other.id], locked

    async def _own(self, session, caller: Caller, username: str, verb: str) -> UserRow:
        me = await self._resolve(session, caller, username)
        if me.id != caller.user_id:
            raise PermissionDenied(f"You can only {verb} your own account.")
        return me

    async def _change_follow(
        self, session, follower_id: str, followee: UserRow, following: bool
    ) -> UserRow:
        """The follow row, both counts, the event and the celebrity check, in `session`
        (both rows locked). Returns the followee after the change."""
        if following:  # a request left from when the followee approved followers is done
            await store.remove_request(session, follower_id, followee.id)
        change = store.add_follow if following else store.remove_follow
        if not await change(session, follower_id, followee.id):
            return followee  # already as asked: nothing changes, no event
        delta = 1 if following else -1
        follower, followee = await store.change_counts(session, follower_id, followee.id, delta)
        if following:  # rolled back with the row
            asked = await store.count_requests_by(session, follower_id)
            self._check_following(follower.following_count + asked)
        event = ev.FollowCreated if following else ev.FollowDeleted
        await self._outbox.add(
            session,
            event(
                follower_id=follower.id,
                followee_id=followee.id,
                followee_follower_count=followee.follower_count,
                follower_following_count=follower.following_count,
            ),
            follower.id,
        )
        return await self._recheck_celebrity(session, followee)

    def _check_following(self, count: int) -> None:
        """Follows and requests waiting for an answer, together, within the cap."""
        if count > self._max_following:
            raise FailedPrecondition(
                f"You follow or have asked to follow {self._max_following} accounts, the most "
                "one account may; unfollow some, or withdraw requests, to follow others."
            )

    async def list_follows(
        self,
        caller: Caller,
        username: str,
        direction: str,
        limit: int,
        after: tuple[datetime, str] | None,
    ):
        """Followers or followees, if the caller may see this account's nights."""
        async with self._db.transaction() as session:
            user = await self._resolve(session, caller, username)
            follows = user.id != caller.user_id and await store.is_following(
                session, caller.user_id, user.id
            )
            if not visibility.may_see(caller.user_id, user.id, user.nights_visible_to, follows):
                raise PermissionDenied(HIDDEN)
            return await store.list_follows(session, user.id, direction, limit, after)

    async def _recheck_celebrity(self, session, user: UserRow) -> UserRow:
        celebrity = self._rule.status(user.celebrity, user.follower_count)
        if celebrity == user.celebrity:
            return user
        await store.set_celebrity(session, user.id, celebrity)
        await self._outbox.add(
            session,
            ev.CelebrityStatusChanged(
                user_id=user.id, celebrity=celebrity, follower_count=user.follower_count
            ),
            user.id,
        )
        return UserRow(**{**user.__dict__, "celebrity": celebrity})

    async def _resolve(
        self, session, caller: Caller, username: str, for_update: bool = False
    ) -> UserRow:
        """`me` or a username → the user; NotFound if there is none."""
        if username == domain.ME:
            user = await store.find_by_id(session, caller.user_id, for_update)
        else:
            user = await store.find_by_username(session, domain.username_key(username), for_update)
        if user is None:
            raise NotFound(f"No user named {username!r}.")
        return user


def event_profile(user: UserRow) -> ev.UserProfile:
    return ev.UserProfile(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        time_zone=user.time_zone,
        sleep_goal=duration_pb2.Duration(seconds=user.sleep_goal_seconds),
        celebrity=user.celebrity,
        nights_visible_to=user.nights_visible_to,
        show_on_global_boards=user.show_on_global_boards,
    )
