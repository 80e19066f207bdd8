"""Cursor pagination (AIP-158): page sizes and opaque page tokens."""

from __future__ import annotations

import base64
import json

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


def encode_token(cursor: dict) -> str:
    """An opaque token for the position after the last item of a page."""
    raw = json.dumps(cursor, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, keys: set[str]) -> dict | None:
    """The cursor in `token` (None for the first page); InvalidArgument if it is not ours."""
    if not token:
        return None
    try:
        cursor = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        cursor = None
    if not isinstance(cursor, dict) or set(cursor) != keys:
        raise InvalidArgument.field(
            "page_token", "is not a token this list returned; start again without it"
        )
    return cursor
