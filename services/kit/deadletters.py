"""Dead letters you can act on: see what is parked, then apply it again.

    python -m services.kit.deadletters list [--events]
    python -m services.kit.deadletters redrive GROUP [--dry-run] [--out-of-order]

A consumer parks an event it cannot apply on `<topic>.dlt` (one partition,
so in the order it parked them), as it came, with headers naming the group,
the error, the attempts and where it came from (services.kit.consumer).
`list` counts them per topic and group, and with `--events` shows each.

`redrive` publishes a group's parked events again onto the topics they came
from, in the order they were parked, with their keys (so each lands in its
user's partition, after what is there now), marked with the group it is
for (REDRIVEN_FOR_HEADER). The group that parked it applies it (its handler
never committed it, or its after-commit step runs again); every other group
skips it unread, as the duplicate it is to them: so a redrive, however late,
relies on none of their records of applied events, which are kept only for a
while (services.kit.retention). Its progress is the
committed offset of the consumer group `<group>.redrive` on each
dead-letter topic: run it again and it publishes only what was parked since,
and a run cut short publishes at most its last batch twice, harmlessly.

Order. A parked event's user may have later events that were applied while
it waited. A read model that keeps versions (entries by revision, score
changes by what happened, raw events by id) takes the re-driven event
exactly, whenever it arrives; one that keeps the latest state (profiles,
follows) would let the old event overwrite a newer state. So a redrive
checks whether each event's user has later events on its partition and
refuses those unless `--out-of-order` is given: fix the cause, and decide.
Exit status: 0 done, 1 refused (nothing of it published), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from services.kit.addresses import kafka_security
from services.kit.outbox import producer_config
from services.kit.settings import Env, kafka_bootstrap
from services.kit.topics import DEAD_LETTER_SUFFIX, REDRIVEN_FOR_HEADER

HEADER = "zentry-dlt-"


@dataclass(frozen=True)
class Parked:
    """One parked event and why, as its headers say."""

    dlt: str
    offset: int
    group: str
    topic: str
    partition: int
    origin_offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    error: str
    attempts: int


def parked_events(bootstrap: str, group: str | None = None, *, since_committed=False):
    """Every parked event (of `group`, if given), per dead-letter topic, in parking order.

    `since_committed`: only what `<group>.redrive` has not re-driven yet.
    """
    consumer = Consumer(_reader(bootstrap, f"{group}.redrive" if group else None))
    try:
        found: dict[str, list[Parked]] = defaultdict(list)
        for dlt in _dead_letter_topics(consumer):
            start = OFFSET_BEGINNING
            if since_committed:
                committed = consumer.committed([TopicPartition(dlt, 0)], timeout=15)[0].offset
                start = committed if committed >= 0 else OFFSET_BEGINNING
            for message in _read_to_end(consumer, TopicPartition(dlt, 0, start)):
                parked = _parked(message)
                if group is None or parked.group == group:
                    found[dlt].append(parked)
        return found
    finally:
        consumer.close()


def later_events_of_the_same_user(bootstrap: str, parked: Parked) -> int:
    """How many events with the parked event's key follow it on its partition."""
    consumer = Consumer(_reader(bootstrap))
    try:
        start = TopicPartition(parked.topic, parked.partition, parked.origin_offset + 1)
        return sum(1 for m in _read_to_end(consumer, start) if m.key() == parked.key)
    finally:
        consumer.close()


def redrive(bootstrap: str, group: str, *, out_of_order: bool, dry_run: bool, say=print) -> int:
    """Publish `group`'s parked events again (see the module docstring); returns how many."""
    pending = parked_events(bootstrap, group, since_committed=True)
    refused = [
        (p, later)
        for events in pending.values()
        for p in events
        if not out_of_order and (later := later_events_of_the_same_user(bootstrap, p))
    ]
    for p, later in refused:
        say(
            f"refused: {p.topic}[{p.partition}]@{p.origin_offset} (key {_text(p.key)}): "
            f"{later} later event(s) of the same user were applied while it was parked"
        )
    if refused:
        say("nothing re-driven; if the group's read model keeps versions, use --out-of-order")
        return -1
    total = sum(len(events) for events in pending.values())
    if dry_run or not total:
        for events in pending.values():
            for p in events:
                say(f"would re-drive {p.topic}[{p.partition}]@{p.origin_offset}: {p.error}")
        return total
    producer = Producer(producer_config(bootstrap, f"{group}-redrive"))
    failures: list[str] = []
    for events in pending.values():
        for p in events:
            producer.produce(
                p.topic,
                key=p.key,
                value=p.value,
                headers=[*p.headers, (REDRIVEN_FOR_HEADER, group.encode())],
                on_delivery=lambda err, _m: err and failures.append(str(err)),
            )
    if producer.flush(60) or failures:
        raise RuntimeError(f"re-driving failed, nothing marked done: {failures or 'timeout'}")
    committer = Consumer(_reader(bootstrap, f"{group}.redrive"))
    try:
        committer.commit(
            offsets=[
                TopicPartition(dlt, 0, events[-1].offset + 1) for dlt, events in pending.items()
            ],
            asynchronous=False,
        )
    finally:
        committer.close()
    return total


def _reader(bootstrap: str, group: str | None = None) -> dict:
    return {
        **kafka_security(),
        "bootstrap.servers": bootstrap,
        "group.id": group or "deadletters-reader",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        # A committed offset the topic no longer holds: start from what it has, never skip.
        "auto.offset.reset": "earliest",
    }


def _dead_letter_topics(consumer: Consumer) -> list[str]:
    topics = consumer.list_topics(timeout=15).topics
    return sorted(name for name in topics if name.endswith(DEAD_LETTER_SUFFIX))


def _read_to_end(consumer: Consumer, start: TopicPartition) -> list[Message]:
    """The partition's messages from `start` to its end as of now (blocking)."""
    low, high = consumer.get_watermark_offsets(
        TopicPartition(start.topic, start.partition), timeout=15
    )
    if high <= low or start.offset >= high:  # nothing to read: no poll waiting for none
        return []
    consumer.assign([start])
    messages: list[Message] = []
    try:
        while True:
            message = consumer.poll(5)
            if message is None:
                break
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    break
                raise KafkaException(message.error())
            messages.append(message)
            if message.offset() >= high - 1:
                break
    finally:
        consumer.unassign()
    return messages


def _parked(message: Message) -> Parked:
    headers = list(message.headers() or [])
    ours = {
        name[len(HEADER) :]: value.decode() for name, value in headers if name.startswith(HEADER)
    }
    return Parked(
        dlt=message.topic(),
        offset=message.offset(),
        group=ours.get("group", ""),
        topic=ours.get("topic", message.topic().removesuffix(DEAD_LETTER_SUFFIX)),
        partition=int(ours.get("partition", "0")),
        origin_offset=int(ours.get("offset", "-1")),
        key=message.key(),
        value=message.value() or b"",
        headers=[(n, v) for n, v in headers if not n.startswith(HEADER)],
        error=ours.get("error", ""),
        attempts=int(ours.get("attempts", "0")),
    )


def _text(key: bytes | None) -> str:
    return key.decode(errors="replace") if key else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.kit.deadletters",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="what is parked, per topic and group")
    listing.add_argument("--events", action="store_true", help="each parked event and why")
    again = commands.add_parser("redrive", help="publish a group's parked events again")
    again.add_argument("group", help="the consumer group that parked them, e.g. feed.entries")
    again.add_argument("--dry-run", action="store_true", help="say what would be re-driven")
    again.add_argument(
        "--out-of-order",
        action="store_true",
        help="re-drive events whose user has later events (read models with versions)",
    )
    args = parser.parse_args(argv)
    bootstrap = kafka_bootstrap(Env())
    if args.command == "list":
        found = parked_events(bootstrap)
        if not any(found.values()):
            print("nothing is parked")
        for dlt, events in found.items():
            per_group: dict[str, int] = defaultdict(int)
            for p in events:
                per_group[p.group] += 1
            for group, count in sorted(per_group.items()):
                print(f"{dlt}  {group}  {count} parked")
            if args.events:
                for p in events:
                    print(
                        f"  @{p.offset} {p.group} {p.topic}[{p.partition}]@{p.origin_offset} "
                        f"key {_text(p.key)}, {p.attempts} attempt(s): {p.error}"
                    )
        return 0
    count = redrive(bootstrap, args.group, out_of_order=args.out_of_order, dry_run=args.dry_run)
    if count < 0:
        return 1
    print(f"{'would re-drive' if args.dry_run else 're-drove'} {count} event(s) of {args.group}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
