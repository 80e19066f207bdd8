"""The cluster id handed to Kafka's storage formatter has Kafka's own shape."""

from __future__ import annotations

import base64

from infra.servers.kafka import new_cluster_id


def test_cluster_ids_are_16_bytes_of_base64url_never_starting_with_a_dash():
    ids = {new_cluster_id() for _ in range(500)}
    assert len(ids) == 500
    for cluster_id in ids:
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
