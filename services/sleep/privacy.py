"""Who may read whose nights: the one place every read of another user's entries asks."""

from __future__ import annotations

from services.kit.auth import Caller


def check_can_view(viewer: Caller, owner_id: str) -> None:
    """Raise PermissionDenied when `viewer` may not read `owner_id`'s entries.

    Every signed-in user may read every entry for now. A privacy setting
    (private, followers only) is decided here and nowhere else: GetSleepEntry
    and ListSleepEntries both call this before answering.
    """
    del viewer, owner_id
