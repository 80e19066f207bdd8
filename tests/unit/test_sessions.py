"""Refresh tokens: which presentation rotates, which ends the session (services.user.sessions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.user import sessions
from services.user.sessions import Outcome, RefreshRow

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def row(**changes) -> RefreshRow:
    fields = {
        "session_id": "s-1",
        "user_id": "u-1",
        "expires_at": NOW + timedelta(days=1),
        "used": False,
        "session_ended": False,
        **changes,
    }
    return RefreshRow(**fields)


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (row(), Outcome.ROTATE),
        (row(used=True), Outcome.REUSED),
        (row(expires_at=NOW), Outcome.EXPIRED),
        (row(session_ended=True), Outcome.ENDED),
        (row(session_ended=True, used=True), Outcome.ENDED),  # already ended: nothing to end
        (row(used=True, expires_at=NOW - timedelta(days=1)), Outcome.REUSED),
        (None, Outcome.UNKNOWN),
    ],
)
def test_what_presenting_a_refresh_token_does(found, expected):
    assert sessions.outcome(found, NOW) is expected


def test_tokens_are_random_well_formed_and_stored_only_as_digests():
    one, two = sessions.new_refresh_token(), sessions.new_refresh_token()
    assert one != two and sessions.well_formed(one)
    assert sessions.digest(one) != sessions.digest(two) and one not in sessions.digest(one)
    for bad in ("", "zr1_", "Bearer x", "zr1_" + "é" * 43, "zr1_" + "a" * 200):
        assert not sessions.well_formed(bad)
