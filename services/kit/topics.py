"""How topics are named, apart from what travels on them (importable before code generation)."""

from __future__ import annotations

DEAD_LETTER_SUFFIX = ".dlt"


def dead_letter_topic(topic: str) -> str:
    """Where consumers of `topic` park the messages they cannot process."""
    return topic + DEAD_LETTER_SUFFIX
