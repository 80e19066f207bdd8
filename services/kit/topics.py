"""How topics are named, apart from what travels on them (importable before code generation)."""

from __future__ import annotations

DEAD_LETTER_SUFFIX = ".dlt"


def dead_letter_topic(topic: str) -> str:
    """Where consumers of `topic` park the messages they cannot process."""
    return topic + DEAD_LETTER_SUFFIX


#: The header a re-driven dead letter carries (services.kit.deadletters): the consumer group it
#: is re-driven for. Every other group skips it unread (services.kit.consumer).
REDRIVEN_FOR_HEADER = "zentry-redriven-for"


def redriven_for_another(headers: list[tuple[str, bytes | None]] | None, group: str) -> bool:
    """Whether a message is a dead letter re-driven for a group other than `group`: to
    `group` it is a copy of an event it has seen (applied, or parked and re-driven itself)."""
    for name, value in headers or ():
        if name == REDRIVEN_FOR_HEADER and value is not None:
            return value.decode(errors="replace") != group
    return False
