"""The tables gateway.body_check generates for the gateway's Lua check (no servers).

What the check does with them is tested through Envoy (tests/e2e/test_hostile_input.py)
and by the fuzzer (tests/e2e/test_fuzz.py).
"""

from __future__ import annotations

import re

import pytest

from gateway import body_check, descriptors
from gateway.config import DESCRIPTOR_SET


@pytest.fixture(scope="module")
def source() -> str:
    descriptor_set = descriptors.load(DESCRIPTOR_SET)
    return body_check.lua(descriptor_set, descriptors.api_services(descriptor_set))


def lua_pattern_matches(pattern: str, path: str) -> bool:
    """Enough of Lua's pattern matching for the generated path patterns."""
    regex = pattern.replace("[^/]+", "\0").replace(".+", "\1")
    regex = re.sub(r"%(.)", lambda m: re.escape(m.group(1)), regex)
    regex = regex.replace("\0", "[^/]+").replace("\1", ".+")
    return re.fullmatch(regex.strip("^$"), path) is not None


def routes(source: str) -> list[tuple[str, str]]:
    return re.findall(r'^\{"(\w+)", "([^"]+)"', source, re.MULTILINE)


def test_every_http_binding_has_a_route(source):
    descriptor_set = descriptors.load(DESCRIPTOR_SET)
    bindings = [
        rule for s in descriptors.api_services(descriptor_set) for m in s.methods for rule in m.http
    ]
    assert len(routes(source)) == len(bindings) > 20


@pytest.mark.parametrize(
    "method, path, template",
    [
        ("GET", "/v1/leaderboards/nights/weekly:aroundMe", "/v1/leaderboards/"),
        ("POST", "/v1/users/ada:follow", "/v1/users/"),
        ("GET", "/.well-known/jwks.json", "/%.well%-known/jwks%.json"),
    ],
)
def test_the_first_matching_route_is_the_most_specific(source, method, path, template):
    first = next(p for verb, p in routes(source) if verb == method and lua_pattern_matches(p, path))
    assert first.startswith("^" + template)
    assert ":" not in path or first.endswith(path.rsplit(":", 1)[1] + "$")


def test_fields_are_known_by_both_names_with_their_kind(source):
    assert '["startTime"] = {"start_time", "ts", false}' in source
    assert '["start_time"] = {"start_time", "ts", false}' in source
    assert '["tags"] = {"tags", "s", true}' in source
    assert '["properties"] = {"properties", \'map\', false, {"s"}}' in source
    assert '["events"] = {"events", \'m\', true, "zentry.analytics.v1.ClientEvent"}' in source
    assert '["sleepGoal"] = {"sleep_goal", "dur", false}' in source


def test_query_parameters_are_the_fields_neither_in_the_path_nor_the_body(source):
    feed = next(line for line in source.splitlines() if line.startswith('{"GET", "^/v1/feed$"'))
    assert '["pageSize"] = true' in feed and '["page_size"] = true' in feed
    patch = next(
        line for line in source.splitlines() if line.startswith('{"PATCH", "^/v1/users/[^/]+$"')
    )
    assert '"zentry.user.v1.User"' in patch and '["updateMask"] = true' in patch
    assert '["username"]' not in patch, "bound in the path"
