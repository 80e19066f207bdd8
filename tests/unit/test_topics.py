"""The declared Kafka topics: what infra creates and k8s will mirror."""

from __future__ import annotations

import pytest

from infra import topics
from infra.errors import InfraError


def test_domain_event_topics_are_kept_forever_for_replay():
    declared = {t.name: t for t in topics.declared()}
    for name in ("zentry.user.events", "zentry.sleep.events"):
        assert declared[name].retention_ms == topics.KEEP_FOREVER
        assert declared[name].partitions > 1  # consumers of one group can share the load


def test_every_topic_has_a_dead_letter_topic_kept_forever():
    declared = topics.declared()
    names = {t.name for t in declared}
    originals = [t for t in declared if not t.name.endswith(topics.DEAD_LETTER_SUFFIX)]
    assert originals, "nothing is declared"
    for topic in originals:
        dead = topics.dead_letter_topic(topic.name)
        assert dead in names
        assert next(t for t in declared if t.name == dead).retention_ms == topics.KEEP_FOREVER


def test_topic_config_carries_the_retention():
    topic = topics.Topic("t", 3, 604800000, "")
    assert topic.config["retention.ms"] == "604800000"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('[[topic]]\nname = "a"\npartitions = 0\nretention_ms = -1', "at least one partition"),
        ('[[topic]]\nname = "a"\npartitions = 1\nretention_ms = 0', "retention_ms"),
        ('[[topic]]\nname = "a"\npartitions = 1', "malformed"),
        ("[[topic]\n", "malformed"),
        (
            '[[topic]]\nname = "a"\npartitions = 1\nretention_ms = -1\n' * 2,
            "declared twice",
        ),
        ('[[topic]]\nname = "a.dlt"\npartitions = 1\nretention_ms = -1', "dead-letter"),
    ],
)
def test_a_bad_declaration_is_refused_with_a_reason(text, complaint):
    with pytest.raises(InfraError, match=complaint):
        topics.declared(text)
