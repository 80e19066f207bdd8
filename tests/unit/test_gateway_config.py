"""Envoy's generated configuration, read from the real descriptor set."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from gateway import descriptors, envoy_config
from gateway.config import DESCRIPTOR_SET, GatewaySettings
from gateway.descriptors import HttpRule
from gateway.render import render, seed_endpoints
from infra import config


@pytest.fixture(scope="module")
def services():
    return descriptors.api_services(descriptors.load(DESCRIPTOR_SET))


@pytest.fixture(scope="module")
def settings():
    return GatewaySettings.load(config.load({}))


def methods_by_name(services):
    return {m.name: m for s in services for m in s.methods}


def test_each_package_is_one_upstream_named_by_its_domain(services):
    assert {(s.full_name, s.upstream) for s in services} >= {
        ("zentry.user.v1.UserService", "user"),
        ("zentry.sleep.v1.SleepService", "sleep"),
    }


def test_the_user_service_and_its_http_rules(services):
    methods = methods_by_name([s for s in services if s.upstream == "user"])
    assert methods["FollowUser"].http == (HttpRule("POST", "/v1/users/{username}:follow"),)
    assert {n for n, m in methods.items() if m.public} == {"CreateUser", "CreateSession", "GetJwks"}
    assert methods["GetUser"].idempotent and methods["FollowUser"].idempotent
    assert not methods["CreateUser"].idempotent and not methods["CreateSession"].idempotent
    assert all(m.http for m in methods.values()), "every public API method has a REST binding"


@pytest.mark.parametrize(
    ("template", "path", "matches"),
    [
        ("/v1/users", "/v1/users", True),
        ("/v1/users", "/v1/users/x", False),
        ("/v1/users/{username}:follow", "/v1/users/ada:follow", True),
        ("/v1/users/{username}:follow", "/v1/users/a/b:follow", False),
        ("/v1/{name=users/*}", "/v1/users/ada", True),
        ("/v1/files/{path=**}", "/v1/files/a/b", True),
        ("/.well-known/jwks.json", "/.well-known/jwksXjson", False),
    ],
)
def test_path_regex(template, path, matches):
    assert bool(re.fullmatch(HttpRule("GET", template).path_regex(), path)) is matches


def http_filters(settings, services):
    listener = envoy_config.listeners(settings, services)["resources"][0]
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def test_filter_order(settings, services):
    names = [f["name"].rsplit(".", 1)[1] for f in http_filters(settings, services)["http_filters"]]
    assert names == [
        "health_check",
        "lua",
        "cors",
        "local_ratelimit",
        "jwt_authn",
        "buffer",
        "grpc_json_transcoder",
        "router",
    ]


def test_only_public_methods_skip_the_token(settings, services):
    manager = http_filters(settings, services)
    jwt = next(f for f in manager["http_filters"] if f["name"].endswith("jwt_authn"))[
        "typed_config"
    ]
    optional = {
        "requires_any": {"requirements": [{"provider_name": "zentry"}, {"allow_missing": {}}]}
    }
    open_rules = [r["match"] for r in jwt["rules"] if r["requires"] == optional]
    open_paths = {m.get("path") for m in open_rules} - {None}
    assert open_paths == {
        "/zentry.user.v1.UserService/CreateUser",
        "/zentry.user.v1.UserService/CreateSession",
        "/zentry.user.v1.UserService/GetJwks",
        "/zentry.analytics.v1.ProductAnalyticsService/TrackEvents",
    }
    rest = {
        (m["headers"][0]["string_match"]["exact"], m["safe_regex"]["regex"])
        for m in open_rules
        if "safe_regex" in m
    }
    assert rest == {
        ("POST", "/v1/users"),
        ("POST", "/v1/sessions"),
        ("GET", re.escape("/.well-known/jwks.json")),
        ("POST", re.escape("/v1/analytics/events:batchCreate")),
    }
    assert all("requires" in r for r in jwt["rules"]), "no rule skips a sent token's check"
    assert jwt["rules"][-1] == {"match": {"prefix": "/"}, "requires": {"provider_name": "zentry"}}
    provider = jwt["providers"]["zentry"]
    assert provider["clock_skew_seconds"] == 5 and provider["forward"] is True


def test_retries_follow_idempotency(settings, services):
    routes = http_filters(settings, services)["route_config"]["virtual_hosts"][0]["routes"]
    retry_on = {
        r["match"].get("path"): r["route"]["retry_policy"]["retry_on"]
        for r in routes
        if "path" in r["match"]
    }
    assert "unavailable" in retry_on["/zentry.user.v1.UserService/GetUser"]
    assert "unavailable" in retry_on["/zentry.user.v1.UserService/FollowUser"]
    assert "unavailable" not in retry_on["/zentry.user.v1.UserService/CreateUser"]
    assert "connect-failure" in retry_on["/zentry.user.v1.UserService/CreateUser"]


def test_limits_come_from_settings(settings, services):
    small = replace(settings, max_request_bytes=4096, rate_limit_per_second=7)
    manager = http_filters(small, services)
    by_name = {f["name"].rsplit(".", 1)[1]: f["typed_config"] for f in manager["http_filters"]}
    assert by_name["buffer"]["max_request_bytes"] == 4096
    assert by_name["local_ratelimit"]["token_bucket"]["tokens_per_fill"] == 7
    statuses = {
        m["filter"]["status_code_filter"]["comparison"]["value"]["default_value"]
        for m in manager["local_reply_config"]["mappers"]
    }
    assert {400, 401, 403, 404, 429, 503} <= statuses


def test_admin_is_on_loopback_and_upstreams_speak_http2(settings, services):
    boot = envoy_config.bootstrap(settings)
    assert boot["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    clusters = envoy_config.clusters(settings, services)["resources"]
    user = next(c for c in clusters if c["name"] == "user")
    assert user["type"] == "EDS"
    options = user["typed_extension_protocol_options"]
    assert "http2_protocol_options" in next(iter(options.values()))["explicit_http_config"]
    assert user["ignore_health_on_host_removal"] is True


def test_render_elsewhere_names_the_in_place_paths_and_seeding_keeps_endpoints(tmp_path):
    pod = replace(
        GatewaySettings.load(config.load({})),
        config_dir=Path("/etc/zentry/envoy"),
        eds_dir=tmp_path / "eds",
    )
    upstreams = render(pod, out_dir=tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "bootstrap.json",
        "cds.json",
        "lds.json",
    ]
    assert not (tmp_path / "eds").exists(), "rendering elsewhere leaves endpoints to the feed"
    boot = json.loads((tmp_path / "out" / "bootstrap.json").read_text())
    lds = boot["dynamic_resources"]["lds_config"]["path_config_source"]
    assert lds == {
        "path": "/etc/zentry/envoy/lds.json",
        "watched_directory": {"path": "/etc/zentry/envoy"},
    }

    assert seed_endpoints(pod) == upstreams
    known = tmp_path / "eds" / f"{upstreams[0]}.json"
    known.write_text('{"resources": ["as the feed wrote it"]}')
    seed_endpoints(pod)
    assert "as the feed wrote it" in known.read_text(), "seeding never overwrites the feed's file"
    assert sorted(p.stem for p in (tmp_path / "eds").iterdir()) == upstreams
