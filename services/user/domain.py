"""The user service's rules, pure: no gRPC, no database.

Each `check_*` returns the normalised value or raises InvalidArgument naming
the field, so a caller learns exactly what to fix.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from services.kit import masks, zones
from services.kit.errors import InvalidArgument

USERNAME = re.compile(r"[A-Za-z0-9_]{3,30}")
EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
MAX_EMAIL = 254
PASSWORD_MIN, PASSWORD_MAX = 10, 128
MAX_DISPLAY_NAME = 64
MAX_BIO = 280
SLEEP_GOAL_MIN, SLEEP_GOAL_MAX = timedelta(hours=1), timedelta(hours=16)
DEFAULT_SLEEP_GOAL = timedelta(hours=8)
DEFAULT_TIME_ZONE = "UTC"
#: `me` in a path means the caller; it can never be a username (too short).
ME = "me"

#: Profile fields a user may change, by proto field name.
UPDATABLE = (
    "display_name",
    "bio",
    "time_zone",
    "sleep_goal",
    "nights_visible_to",
    "approve_followers",
    "show_on_global_boards",
)
IMMUTABLE = (
    "id",
    "username",
    "email",
    "follower_count",
    "following_count",
    "celebrity",
    "create_time",
    "update_time",
)


def username_key(username: str) -> str:
    """Usernames are unique ignoring case; this is the form they are compared in."""
    return username.casefold()


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise InvalidArgument.field(
            "username", "must be 3 to 30 characters: letters, digits or underscores"
        )
    return username


def check_email(email: str) -> str:
    email = email.strip()
    if len(email) > MAX_EMAIL or not EMAIL.fullmatch(email):
        raise InvalidArgument.field("email", "must be an email address such as ada@example.com")
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


def email_key(email: str) -> str:
    """Emails are unique ignoring case."""
    return email.casefold()


def check_password(password: str, username: str, field: str = "password") -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidArgument.field(
            field, f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long"
        )
    if password.isalpha() or password.isdigit():
        raise InvalidArgument.field(field, "must mix letters with digits or symbols")
    if username and username_key(username) in password.casefold():
        raise InvalidArgument.field(field, "must not contain the username")
    return password


def check_display_name(name: str) -> str:
    name = name.strip()
    if len(name) > MAX_DISPLAY_NAME or _has_control_characters(name):
        raise InvalidArgument.field(
            "display_name", f"must be at most {MAX_DISPLAY_NAME} printable characters"
        )
    return name


def check_bio(bio: str) -> str:
    bio = bio.strip()
    if len(bio) > MAX_BIO or _has_control_characters(bio.replace("\n", "")):
        raise InvalidArgument.field("bio", f"must be at most {MAX_BIO} printable characters")
    return bio


def check_time_zone(name: str) -> str:
    """An IANA zone name such as Europe/Paris; empty means UTC."""
    if not name:
        return DEFAULT_TIME_ZONE
    zones.zone(name)
    return name


def check_sleep_goal(goal: timedelta) -> timedelta:
    if not SLEEP_GOAL_MIN <= goal <= SLEEP_GOAL_MAX:
        raise InvalidArgument.field("sleep_goal", "must be between 1 hour and 16 hours")
    return goal


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def check_update_mask(paths: list[str], present: set[str]) -> list[str]:
    """The fields to change (services.kit.masks)."""
    return masks.fields_to_change(paths, present, UPDATABLE, IMMUTABLE, "")


@dataclass(frozen=True)
class CelebrityRule:
    """When an account becomes a celebrity, with hysteresis so it does not flap.

    An account becomes a celebrity at `promote_at` followers and stops being
    one only below `demote_below` (< promote_at); in between, nothing changes.
    """

    promote_at: int
    demote_below: int

    def __post_init__(self) -> None:
        if not 0 < self.demote_below <= self.promote_at:
            raise ValueError("need 0 < demote_below <= promote_at")

    def status(self, celebrity: bool, follower_count: int) -> bool:
        if not celebrity and follower_count >= self.promote_at:
            return True
        if celebrity and follower_count < self.demote_below:
            return False
        return celebrity
