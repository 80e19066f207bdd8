"""The tables gateway.body_check generates for the gateway's Lua check (no servers).

What the check does with them is tested through Envoy (tests/e2e/test_hostile_input.py)
and by the fuzzer (tests/e2e/test_fuzz.py).
"""

from __future__ import annotations

import re

import pytest

from gateway import body_check, descriptors
from gateway.config import DESCRIPTOR_SET
from tests.lua_filter import LuaFilter


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
    assert '["startTime"] = {".start_time", "ts", false}' in source
    assert '["start_time"] = {".start_time", "ts", false}' in source
    assert '["tags"] = {".tags", "s", true}' in source
    assert '["properties"] = {".properties", \'map\', false, {"s"}}' in source
    assert '["events"] = {".events", \'m\', true, "zentry.analytics.v1.ClientEvent"}' in source
    assert '["sleepGoal"] = {".sleep_goal", "dur", false}' in source


def test_query_parameters_are_the_fields_neither_in_the_path_nor_the_body(source):
    feed = next(line for line in source.splitlines() if line.startswith('{"GET", "^/v1/feed$"'))
    assert '["pageSize"] = true' in feed and '["page_size"] = true' in feed
    patch = next(
        line for line in source.splitlines() if line.startswith('{"PATCH", "^/v1/users/[^/]+$"')
    )
    assert '"zentry.user.v1.User"' in patch and '["updateMask"] = true' in patch
    assert '["username"]' not in patch, "bound in the path"


@pytest.fixture(scope="module")
def check(source) -> LuaFilter:
    return LuaFilter(source)


def refused(answer) -> tuple[str, str]:
    assert answer is not None and answer.status == 400, answer
    body = answer.body
    (violation,) = body["details"][0]["fieldViolations"]
    assert body["status"] == "INVALID_ARGUMENT"
    assert body["message"] == f"{violation['field']}: {violation['description']}"
    return violation["field"], violation["description"]


NIGHT = '{"startTime": "2026-11-20T14:30:00Z", "endTime": "2026-11-20T22:10:00.5+09:00"'


@pytest.mark.parametrize(
    "body",
    [
        NIGHT + "}",
        NIGHT + ', "quality": 4, "note": "a \\"quoted\\" \\u00e9 note", "tags": ["a", "b"]}',
        NIGHT + ', "quality": "4", "requestId": null, "tags": null}',
        "",
        "  {}  ",
        '{"start_time": "2026-11-20T14:30:00Z"}',
    ],
)
def test_what_the_transcoder_reads_as_meant_passes(check, body):
    assert check.request("POST", "/v1/sleepEntries", body) is None


@pytest.mark.parametrize(
    "path, body, field, why",
    [
        ("/v1/sleepEntries", NIGHT + ', "qualty": 4}', "qualty", "is not a field here"),
        ("/v1/sleepEntries", '{"endTime": {"seconds": 1}}', "end_time", "RFC 3339"),
        ("/v1/sleepEntries", '{"endTime": "yesterday"}', "end_time", "RFC 3339"),
        ("/v1/sleepEntries", '{"quality": 4.5}', "quality", "whole number"),
        ("/v1/sleepEntries", '{"quality": 99999999999}', "quality", "whole number"),
        ("/v1/sleepEntries", '{"quality": true}', "quality", "whole number"),
        ("/v1/sleepEntries", '{"quality": 2147483648}', "quality", "whole number"),
        ("/v1/sleepEntries", '{"quality": 1-2}', "body", "not valid JSON"),
        ("/v1/sleepEntries", '{"quality": 1e}', "body", "not valid JSON"),
        ("/v1/sleepEntries", '{"tags": "a"}', "tags", "must be a list"),
        ("/v1/sleepEntries", '{"tags": ["a", 7]}', "tags[1]", "must be a string"),
        ("/v1/sleepEntries", "[1, 2]", "body", "must be an object"),
        ("/v1/sleepEntries", '{"note": "x"} {}', "body", "has more after"),
        ("/v1/sleepEntries", '{"note": "x"', "body", "not valid JSON"),
        ("/v1/sleepEntries", '{"": 1}', "(an empty name)", "is not a field here"),
        (
            "/v1/analytics/events:batchCreate",
            '{"events": [{"name": "a"}, {"properties": {"k": {}}}]}',
            "events[1].properties['k']",
            "must be a string",
        ),
        (
            "/v1/analytics/events:batchCreate",
            '{"events": [{"eventTime": "2026-11-20T14:30:00Z", "pg": "/feed"}]}',
            "events[0].pg",
            "is not a field here",
        ),
        ("/v1/users/me:follow", '{"username": 7}', "username", "must be a string"),
    ],
)
def test_what_it_would_misread_is_refused_naming_the_field(check, path, body, field, why):
    method = "POST"
    got_field, got_why = refused(check.request(method, path, body))
    assert (got_field, why in got_why) == (field, True), got_why


def test_the_update_body_is_the_message_its_rule_names(check):
    field, why = refused(check.request("PATCH", "/v1/users/me", '{"user": {"bio": "owl"}}'))
    assert field == "user" and "bio, timeZone, sleepGoal" in why
    assert check.request("PATCH", "/v1/users/me?updateMask=bio", '{"bio": "owl"}') is None


def test_query_parameters_the_call_does_not_have_are_refused(check):
    assert check.request("GET", "/v1/feed?pageSize=5&page_token=x") is None
    assert refused(check.request("GET", "/v1/feed?pagesize=5"))[0] == "pagesize"
    assert refused(check.request("GET", "/v1/feed?a%2Eb=1"))[0] == "a.b"
    assert refused(check.request("POST", "/v1/sleepEntries?note=x", "{}"))[0] == "note"


def test_nesting_where_a_string_belongs_is_refused_at_once(check):
    deep = '{"events": [{"properties": ' + '{"a": ' * 40 + '"x"' + "}" * 40 + "}]}"
    field, why = refused(check.request("POST", "/v1/analytics/events:batchCreate", deep))
    assert field.startswith("events[0].properties") and why


def test_calls_it_does_not_know_pass_untouched(check):
    assert check.request("GET", "/healthz") is None
    assert check.request("POST", "/zentry.user.v1.UserService/GetUser", "\x00\x00") is None


def test_an_answer_naming_broken_utf8_is_still_json(check):
    answer = check.request("GET", "/v1/feed?%FF%FE=1")
    assert answer.status == 400 and answer.body["details"][0]["fieldViolations"][0]["field"]
