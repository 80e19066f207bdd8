"""Text as callers send it: no control characters, wherever a string enters.

PostgreSQL cannot store a NUL byte, and the other control characters have no
place in a name, a note or a URL. `ControlCharacterGuard` looks at every
string of every request (nested messages, repeated fields, map keys and
values) and refuses one carrying a control character with INVALID_ARGUMENT
naming the field, before the servicer sees it. Tabs and line breaks pass (a
note or a bio has lines); a field with no use for them refuses them itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.kit.errors import InvalidArgument
from services.kit.interceptors import INFRASTRUCTURE_PREFIXES, Around

#: C0 controls but tab, line feed and carriage return; DEL; C1 controls.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
WHY = (
    "must not contain control characters "
    "(U+0000 to U+001F but tab and line breaks, U+007F to U+009F)"
)


def first_control_character(message: Message) -> str | None:
    """The path of the first string field holding a control character, as `a.b[2].c`."""
    return next(_bad_paths(message, ""), None)


def _bad_paths(message: Message, prefix: str) -> Iterator[str]:
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            yield from _bad_map(field, value, path)
        elif field.is_repeated:
            for index, item in enumerate(value):
                yield from _bad_value(field, item, f"{path}[{index}]")
        else:
            yield from _bad_value(field, value, path)


def _bad_map(field: FieldDescriptor, entries, path: str) -> Iterator[str]:
    value_field = field.message_type.fields_by_name["value"]
    for key, value in entries.items():
        if isinstance(key, str) and CONTROL.search(key):
            yield path
        yield from _bad_value(value_field, value, f"{path}[{key!r}]")


def _bad_value(field: FieldDescriptor, value, path: str) -> Iterator[str]:
    if field.type == FieldDescriptor.TYPE_STRING:
        if CONTROL.search(value):
            yield path
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        yield from _bad_paths(value, f"{path}.")


class ControlCharacterGuard(Around):
    """Refuses a request with a control character in any string, naming the field."""

    def applies_to(self, method: str) -> bool:
        return not method.startswith(INFRASTRUCTURE_PREFIXES)

    async def around(self, call, request, context, method):
        path = first_control_character(request)
        if path is not None:
            raise InvalidArgument.field(path, WHY)
        return await call(request, context)
