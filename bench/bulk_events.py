"""Bulk population: the domain events the user and sleep services publish, straight to Kafka.

For populations too large to create through the REST API in a benchmark's
time, this publishes UserRegistered, CelebrityStatusChanged, FollowCreated and
SleepEntryCreated envelopes on the real topics, keyed by user id as the
services key them, so the feed's read models are built by its real consumers.
The users it invents exist only in those events (they cannot log in); the
readers a benchmark reads as are registered through the gateway instead.
Deterministic for a given seed.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from google.protobuf import duration_pb2, timestamp_pb2
from zentry.events.v1 import analytics_events_pb2 as aev
from zentry.events.v1 import sleep_events_pb2 as sev
from zentry.events.v1 import user_events_pb2 as uev

from services.kit.addresses import kafka_security
from services.kit.events import CLIENT_EVENTS, SLEEP_EVENTS, USER_EVENTS, envelope

ZONES = ("America/Los_Angeles", "America/New_York", "Europe/London", "Europe/Berlin",
         "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney", "America/Sao_Paulo")  # fmt: skip


def _ts(when: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


class BulkPublisher:
    """Produces envelopes as the services' outbox relays do; counts what it sent."""

    def __init__(
        self,
        bootstrap: str,
        seed: int = 7,
        *,
        user_topic: str = USER_EVENTS,
        sleep_topic: str = SLEEP_EVENTS,
    ):
        self._producer = Producer(
            {
                **kafka_security(),
                "bootstrap.servers": bootstrap,
                "linger.ms": 20,
                "compression.type": "lz4",
            }
        )
        self.random = random.Random(seed)
        self.sent = 0
        self._user_topic, self._sleep_topic = user_topic, sleep_topic

    def _send(self, topic: str, payload, subject: str) -> None:
        event = envelope(payload, subject, "bench")
        while True:
            try:
                self._producer.produce(topic, key=subject, value=event.SerializeToString())
                break
            except BufferError:
                self._producer.poll(0.1)
        self._producer.poll(0)
        self.sent += 1

    def flush(self) -> None:
        if self._producer.flush(60):
            raise RuntimeError("Kafka did not take every event within 60 s")

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.random.getrandbits(128), version=4))

    def user(self, name: str, celebrity: bool = False) -> str:
        user_id = self.uuid()
        self.profile(user_id, name, self.random.choice(ZONES))
        if celebrity:
            self.celebrity(user_id)
        return user_id

    def profile(self, user_id: str, name: str, time_zone: str) -> None:
        profile = uev.UserProfile(
            user_id=user_id,
            username=name,
            display_name=name.replace("_", " ").title(),
            time_zone=time_zone,
            sleep_goal=duration_pb2.Duration(seconds=8 * 3600),
            nights_visible_to="everyone",  # ranked on the global boards the bench reads
        )
        self._send(self._user_topic, uev.UserRegistered(profile=profile), user_id)

    def celebrity(self, user_id: str) -> None:
        self._send(
            self._user_topic, uev.CelebrityStatusChanged(user_id=user_id, celebrity=True), user_id
        )

    def follow(self, reader: str, author: str) -> None:
        follow = uev.FollowCreated(follower_id=reader, followee_id=author)
        self._send(self._user_topic, follow, reader)

    def night(self, author: str, days_ago: int, *, fresh: bool = False) -> str:
        """A believable night: bedtime around 23:00 ± 45 min, 5.5 to 9 hours, logged on waking.

        `fresh` gives it an id no run has used (the seeded ones repeat run after run).
        """
        now = datetime.now(UTC)
        start = (now - timedelta(days=days_ago)).replace(hour=23, minute=0, second=0, microsecond=0)
        start += timedelta(minutes=self.random.gauss(0, 45))
        end = start + timedelta(minutes=self.random.uniform(330, 540))
        return self.entry(author, start, end, "UTC", str(uuid.uuid4()) if fresh else None)

    def entry(
        self, author: str, start: datetime, end: datetime, time_zone: str, entry_id=None
    ) -> str:
        """A SleepEntryCreated as the sleep service publishes it (sleep date in `time_zone`)."""
        now = datetime.now(UTC)
        created = min(end + timedelta(minutes=self.random.uniform(1, 90)), now)
        entry_id = entry_id or self.uuid()
        state = sev.SleepEntryState(
            entry_id=entry_id,
            user_id=author,
            start_time=_ts(start),
            end_time=_ts(end),
            duration=duration_pb2.Duration(seconds=int((end - start).total_seconds())),
            time_zone=time_zone,
            sleep_date=end.astimezone(ZoneInfo(time_zone)).date().isoformat(),
            quality=self.random.randint(1, 5),
            note=self.random.choice(("", "", "woke once", "late coffee", "slept like a log")),
            revision=1,
            create_time=_ts(created),
            update_time=_ts(created),
        )
        self._send(self._sleep_topic, sev.SleepEntryCreated(entry=state), author)
        return entry_id

    def page_view(self, user_id: str, at: datetime, page: str) -> None:
        """A ClientEventAccepted as the analytics intake publishes it for a signed-in user."""
        visitor = f"u:{user_id}"
        event = aev.ClientEventAccepted(
            event_id=self.uuid(), name="page_view", visitor_id=visitor, user_id=user_id, page=page
        )
        event.event_time.CopyFrom(_ts(at))
        event.receive_time.CopyFrom(_ts(datetime.now(UTC)))
        self._send(CLIENT_EVENTS, event, visitor)


def wait_consumed(bootstrap: str, groups: dict[str, str], timeout: float) -> float:
    """Wait until each group (name -> topic) has committed up to its topic's end; seconds taken."""
    admin = AdminClient({**kafka_security(), "bootstrap.servers": bootstrap})
    probe = Consumer(
        {**kafka_security(), "bootstrap.servers": bootstrap, "group.id": "bench-probe"}
    )
    ends = {}
    for group, topic in groups.items():
        partitions = probe.list_topics(topic, timeout=15).topics[topic].partitions
        ends[group] = {
            p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1]
            for p in partitions
        }
    probe.close()
    started = time.monotonic()
    while True:
        behind = 0
        for group, topic in groups.items():
            request = ConsumerGroupTopicPartitions(
                group, [TopicPartition(topic, p) for p in ends[group]]
            )
            result = admin.list_consumer_group_offsets([request])[group].result(timeout=15)
            for tp in result.topic_partitions:
                behind += max(0, ends[group][tp.partition] - max(tp.offset, 0))
        if behind == 0:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"the consumers are still {behind} events behind")
        time.sleep(0.2)
