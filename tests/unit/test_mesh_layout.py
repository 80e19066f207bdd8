"""infra.mesh without processes: which instances each layout starts, and how Envoy's admin
answers are read when waiting for the gateway."""

from __future__ import annotations

import pytest

from infra import config, processes
from infra.mesh import (
    BENCH,
    CHAOS,
    CONSUMING,
    DEV,
    E2E,
    FLOOD,
    SERVICES,
    Layout,
    _host_stat,
    _listener_stats,
    gateway_url,
)


def test_dev_runs_one_api_instance_of_each_service_and_two_consumers_of_each_that_consumes():
    instances = DEV.instances()
    assert instances.count(("user", "all")) == 1
    for service in CONSUMING:
        assert instances.count((service, "api")) == 1
        assert instances.count((service, "consumer")) == 2
    assert DEV.own_ports


def test_e2e_runs_two_api_instances_of_each_service_and_one_consumer_of_each_that_consumes():
    instances = E2E.instances()
    assert instances.count(("user", "all")) == 2
    for service in CONSUMING:
        assert instances.count((service, "api")) == 2
        assert instances.count((service, "consumer")) == 1
    assert len(instances) == 2 * len(SERVICES) + len(CONSUMING)


def test_chaos_runs_two_of_each_role():
    instances = CHAOS.instances()
    assert instances.count(("user", "all")) == 2
    assert all(instances.count((s, r)) == 2 for s in CONSUMING for r in ("api", "consumer"))


def test_the_bench_and_the_flood_run_instances_that_consume_too():
    assert BENCH.instances() == [(s, "all") for s in SERVICES for _ in range(2)]
    assert FLOOD.instances() == [("user", "all")] * 2 + [("feed", "all")] * 2


@pytest.mark.parametrize(
    "layout",
    [
        lambda: Layout({"nope": 1}),
        lambda: Layout({"user": -1}),
        lambda: Layout({"user": 1}, consumers=-1),
        lambda: Layout({"user": 2}, own_ports=True),
    ],
)
def test_a_layout_that_cannot_be_is_refused(layout):
    with pytest.raises(ValueError):
        layout()


def test_the_gateway_url_is_envoys_gateway_listener():
    settings = config.load({"ZENTRY_GATEWAY_PORT": "18080"})
    assert gateway_url(settings) == "http://127.0.0.1:18080"


CLUSTERS = """\
user::observability_name::user
user::default_priority::max_connections::1024
user::added_via_api::true
user::127.0.0.1:41001::cx_active::2
user::127.0.0.1:41001::rq_success::17
user::127.0.0.1:41001::health_flags::healthy
user::127.0.0.1:41002::cx_active::0
user::127.0.0.1:41002::rq_success::5
sleep::127.0.0.1:42001::cx_active::1
jwks::127.0.0.1:8080::cx_active::1
"""


def test_hosts_are_read_from_envoys_clusters_by_cluster_and_port():
    assert _host_stat(CLUSTERS, "cx_active") == {
        "user": {41001: 2, 41002: 0},
        "sleep": {42001: 1},
        "jwks": {8080: 1},
    }
    assert _host_stat(CLUSTERS, "rq_success") == {"user": {41001: 17, 41002: 5}}


def test_listener_stats_keep_whole_numbers_only():
    text = (
        "listener_manager.lds.update_time: 1764547200123\n"
        "listener_manager.lds.update_rejected: 0\n"
        'listener_manager.lds.version_text: ""\n'
        "listener_manager.total_listeners_warming: 1\n"
    )
    assert _listener_stats(text) == {
        "listener_manager.lds.update_time": 1764547200123,
        "listener_manager.lds.update_rejected": 0,
        "listener_manager.total_listeners_warming": 1,
    }


def test_a_free_port_is_never_handed_out_twice(monkeypatch):
    """Children bind their ports a moment after they are given them: the kernel, asked
    again meanwhile, may give the same one (as it did to a metrics and a gRPC port in a
    chaos run), so the mesh must not."""
    given = iter([51209, 51209, 51209, 40001])

    class Probe:
        def __init__(self, *_args):
            self.port = 0

        def __enter__(self):
            return self

        def __exit__(self, *_exc):
            return False

        def bind(self, _address):
            self.port = next(given)

        def getsockname(self):
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(processes.socket, "socket", Probe)
    monkeypatch.setattr(processes, "_HANDED_OUT", set())
    assert [processes.free_port(), processes.free_port()] == [51209, 40001]
