"""Sessions a person controls: refresh tokens that rotate, and reuse that ends them.

A log-in starts a session. Its access tokens are stateless JWTs of
ZENTRY_TOKEN_TTL (15 minutes) naming it (`sid`); its refresh token is random
(REFRESH_BYTES, base64url, after PREFIX) and stored only as its SHA-256.
Each refresh marks the token used and gives the next one, valid for
ZENTRY_REFRESH_TTL after it is issued.

A used token presented again means that two parties hold the session's
tokens, one of them a thief (the OAuth 2.0 Security BCP, 4.14): the whole
session ends, so neither can refresh again. Ending a session (log-out, log-out
everywhere, a password change) refuses its refresh tokens at once; its access
tokens are refused when they expire. The rules are pure: `outcome` decides,
the store and the actions do.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

PREFIX = "zr1_"
REFRESH_BYTES = 32
#: The session a token's access tokens belong to, as `DeleteSession` names it.
CURRENT = "current"


def new_refresh_token() -> str:
    return PREFIX + secrets.token_urlsafe(REFRESH_BYTES)


def digest(token: str) -> str:
    """What is stored of a refresh token: its SHA-256 (a leaked table refreshes nothing)."""
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str) -> bool:
    """Cheap to check before any lookup: the prefix and a plausible length."""
    return token.startswith(PREFIX) and 40 <= len(token) <= 64 and token.isascii()


@dataclass(frozen=True)
class RefreshRow:
    """A refresh token as the store has it, with its session's state."""

    session_id: str
    user_id: str
    expires_at: datetime
    used: bool
    session_ended: bool


class Outcome(Enum):
    ROTATE = "rotate"  # good: mark it used, give the next
    REUSED = "reused"  # used before: end the session
    ENDED = "ended"  # the session was ended (logged out, reused, password changed)
    EXPIRED = "expired"
    UNKNOWN = "unknown"


def outcome(row: RefreshRow | None, now: datetime) -> Outcome:
    if row is None:
        return Outcome.UNKNOWN
    if row.session_ended:
        return Outcome.ENDED
    if row.used:
        return Outcome.REUSED
    if row.expires_at <= now:
        return Outcome.EXPIRED
    return Outcome.ROTATE
