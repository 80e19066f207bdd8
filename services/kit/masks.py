"""Update masks (AIP-134): which fields a PATCH changes."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message

from services.kit.errors import InvalidArgument


def present(message: Message) -> set[str]:
    """The fields `message` sets (what a PATCH without a mask changes)."""
    return {field.name for field, _ in message.ListFields()}


def fields_to_change(
    paths: list[str],
    present: set[str],
    updatable: Sequence[str],
    fixed: Sequence[str],
    fixed_why: str,
) -> list[str]:
    """The mask's paths, or without a mask the updatable fields given non-empty.

    InvalidArgument naming `update_mask` for a path that is unknown or `fixed`
    (cannot be changed: `fixed_why`), and for an update that changes nothing:
    a request whose fields were all misspelt or misplaced must not look done.
    """
    if not paths:
        paths = [path for path in updatable if path in present]
        if not paths:
            raise InvalidArgument.field(
                "update_mask",
                "names no field to change, and no field was given; send the new values with "
                f"updateMask naming them (one or more of {', '.join(updatable)})",
            )
    for path in paths:
        if path in fixed:
            raise InvalidArgument.field("update_mask", f"{path} cannot be changed{fixed_why}")
        if path not in updatable:
            raise InvalidArgument.field(
                "update_mask", f"unknown field {path!r}; choose from {', '.join(updatable)}"
            )
    return list(dict.fromkeys(paths))
