"""Who may read whose nights: the one place every read of another user's entries asks.

The rule is services.kit.visibility's; the owner's setting and the follows are the
sleep service's copies (services.sleep.directory). An owner the copies do not know
yet counts as the default setting, and a follow they do not know yet as none: a
doubt refuses, it never shows.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit import visibility
from services.kit.auth import Caller
from services.kit.errors import PermissionDenied
from services.sleep import store

#: The same words whatever the owner chose, so a refusal tells nothing of the setting.
HIDDEN = "This person's nights are not shared with you."


async def can_view(session: AsyncSession, viewer: Caller, owner_id: str) -> bool:
    if viewer.user_id == owner_id:
        return True
    setting, follows = await store.audience_of(session, viewer.user_id, owner_id)
    return visibility.may_see(viewer.user_id, owner_id, setting, follows)


async def check_can_view(session: AsyncSession, viewer: Caller, owner_id: str) -> None:
    """PermissionDenied when `viewer` may not read `owner_id`'s entries."""
    if not await can_view(session, viewer, owner_id):
        raise PermissionDenied(HIDDEN)
