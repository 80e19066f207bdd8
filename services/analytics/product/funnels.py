"""Funnels: how far each visitor (or user) got along a sequence of events. Pure, no I/O.

The rule, for one subject and the steps s1..sn (a name may appear more than once):

- An attempt starts at one of their s1 events whose time t1 lies in the
  query's range [start, end). Each later step k is the earliest of their
  events named sk at or after the time of step k-1 (never the same event
  twice), and every step must happen by t1 + window (inclusive).
- Other events between two steps do not matter; an event of a later step
  before the previous one does not count for it (no skipping ahead), and
  a step never reached stops the attempt: skipping s2 means s3 is not
  reached either.
- The subject reached step k if any of their attempts did. They count
  once per step however often they repeated steps or went back (doing s1
  again after s2 starts another attempt, which can only help if it gets
  further). The times between steps are those of their earliest attempt
  among those that got furthest.

Taking the earliest matching event is as good as any other choice: it
leaves the most of the window for the steps after it. The outcome depends
only on the events' times, never on the order they arrived in, so a late
event counts exactly as if it had come in order.

Times are integers (microseconds since the epoch), as the store reads them.
"""

from __future__ import annotations

import statistics
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from services.analytics.product import tracking
from services.kit.errors import InvalidArgument

MIN_STEPS, MAX_STEPS = 2, 8
SECOND = 1_000_000  # microseconds


def steps_of(values: Sequence[str]) -> list[str]:
    """The steps a request names: each value one name or a comma-separated list of them.

    InvalidArgument naming `steps` unless there are 2 to 8 event names.
    """
    steps = [name for value in values for name in value.split(",")]
    if not MIN_STEPS <= len(steps) <= MAX_STEPS:
        raise InvalidArgument.field(
            "steps", f"give {MIN_STEPS} to {MAX_STEPS} event names, in order, e.g. 'a,b,c'"
        )
    for name in steps:
        if not tracking.EVENT_NAME.fullmatch(name):
            raise InvalidArgument.field("steps", f"{name!r} is not an event name like 'page_view'")
    return steps


def journey(
    steps: Sequence[str],
    times: Mapping[str, Sequence[int]],
    window: int,
    start: int,
    end: int,
) -> tuple[int, ...]:
    """The times of the steps one subject reached (empty: not even the first), by the rule above.

    `times` maps each step's name to the subject's event times, sorted; only
    first steps in [start, end) begin an attempt.
    """
    firsts = times.get(steps[0], ())
    best: tuple[int, ...] = ()
    for i in range(bisect_left(firsts, start), len(firsts)):
        first = firsts[i]
        if first >= end:
            break
        reached, exhausted = _attempt(steps, times, window, i, first)
        if len(reached) > len(best):
            best = reached
        if len(best) == len(steps) or exhausted:
            # Attempts starting later reach each step no earlier (the choice is monotone),
            # so once a step has no event left at all, none of them gets further.
            break
    return best


def _attempt(steps, times, window: int, index: int, first: int) -> tuple[tuple[int, ...], bool]:
    """Steps reached from the first step's event `index`; and whether it stopped because a
    step had no event left at all (rather than none within the window)."""
    reached = [first]
    used = {steps[0]: index}  # per name, the event taken last: a repeated step takes a later one
    for name in steps[1:]:
        found = times.get(name, ())
        j = bisect_left(found, reached[-1])
        if name in used:
            j = max(j, used[name] + 1)
        if j >= len(found):
            return tuple(reached), True
        if found[j] > first + window:
            return tuple(reached), False
        used[name] = j
        reached.append(found[j])
    return tuple(reached), False


@dataclass(frozen=True)
class StepFigures:
    name: str
    #: Subjects who reached this step (and so every step before it).
    reached: int
    #: Those who reached the step before but not this one (0 for the first step).
    dropped: int
    #: dropped / reached at the step before (0 for the first step, or when nobody did).
    drop_off_rate: float
    #: reached / reached at the first step (1 for the first step, 0 when nobody started).
    conversion_rate: float
    #: Median seconds from the step before, over those who reached this one (None: nobody,
    #: or the first step).
    median_seconds: float | None


def summarize(steps: Sequence[str], journeys: Iterable[tuple[int, ...]]) -> list[StepFigures]:
    """Each step's figures from the subjects' journeys (as `journey` returns them)."""
    reached = [0] * len(steps)
    gaps: list[list[int]] = [[] for _ in steps]
    for times in journeys:
        for k, when in enumerate(times):
            reached[k] += 1
            if k:
                gaps[k].append(when - times[k - 1])
    figures = []
    for k, name in enumerate(steps):
        before = reached[k - 1] if k else reached[0]
        dropped = before - reached[k]
        figures.append(
            StepFigures(
                name=name,
                reached=reached[k],
                dropped=dropped,
                drop_off_rate=dropped / before if before else 0.0,
                conversion_rate=reached[k] / reached[0] if reached[0] else 0.0,
                median_seconds=statistics.median(gaps[k]) / SECOND if gaps[k] else None,
            )
        )
    return figures
