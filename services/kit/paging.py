"""Cursor pagination (AIP-158): page sizes, and opaque page tokens bound to their list."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime

from services.kit.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


def page_size(
    requested: int, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE
) -> int:
    """0 means the default; above the maximum is capped (AIP-158); negative is an error."""
    if requested < 0:
        raise InvalidArgument.field("page_size", "must not be negative")
    return min(requested or default, maximum)


def encode_token(cursor: dict, listing: str = "") -> str:
    """An opaque token for the position after the last item of a page. A token of a
    `listing` (what the list is of: its owner, filters, board) is good for that one only."""
    if listing:
        cursor = {**cursor, _LISTING: listing}
    raw = json.dumps(cursor, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, keys: set[str], listing: str = "") -> dict | None:
    """The cursor in `token` (None for the first page); InvalidArgument if it is not ours,
    or is of another listing than the one it was made for."""
    if not token:
        return None
    try:
        cursor = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        cursor = None
    if not isinstance(cursor, dict) or set(cursor) != keys | ({_LISTING} if listing else set()):
        raise InvalidArgument.field(
            "page_token", "is not a token this list returned; start again without it"
        )
    if cursor.pop(_LISTING, "") != listing:
        raise InvalidArgument.field(
            "page_token", "belongs to another list (other filters); start again without it"
        )
    return cursor


def encode_time_and_id(at: datetime, item_id: str, listing: str = "") -> str:
    """The token after an item of a list in (time, id) order."""
    return encode_token({"t": at.isoformat(), "id": item_id}, listing)


def decode_time_and_id(token: str, listing: str = "") -> tuple[datetime, str] | None:
    """(time, id) to go on after, from a token of `encode_time_and_id` (None: first page)."""
    cursor = decode_token(token, {"t", "id"}, listing)
    if cursor is None:
        return None
    try:
        return datetime.fromisoformat(cursor["t"]), str(uuid.UUID(cursor["id"]))
    except (TypeError, ValueError, AttributeError):
        raise InvalidArgument.field("page_token", "is damaged; start again without it") from None


_LISTING = "list"
