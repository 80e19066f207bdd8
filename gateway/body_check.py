"""The gateway's check of request bodies and query parameters, generated from the protos.

Envoy's transcoder drops a JSON field it does not know without a word
(envoyproxy/envoy#46623), so a typo answers 200 and changes nothing, and it
answers a value of the wrong kind with a 400 that names no field, or passes
on a message the service cannot decode. body_check.lua, run by a Lua filter
just before the transcoder, refuses both with a 400 whose BadRequest names the
field. This module writes what it checks against: every HTTP binding (method,
path pattern, the message its body fills, its query parameters) and every
message reachable from them (its fields by JSON and proto name, each with its
JSON kind).
"""

from __future__ import annotations

import re
from pathlib import Path

from google.protobuf import descriptor_pb2

from gateway.descriptors import ApiService, HttpRule

CHECKER = Path(__file__).with_name("body_check.lua")
#: A request header the checker sets on a request it refuses, so that Envoy's local reply
#: config passes its answer on as it is.
REFUSED_HEADER = "x-zentry-body-check"
F = descriptor_pb2.FieldDescriptorProto
#: Field types by the JSON they take (proto3 JSON mapping).
SCALARS = {
    F.TYPE_STRING: "s",
    F.TYPE_BYTES: "s",
    F.TYPE_BOOL: "b",
    F.TYPE_ENUM: "e",
    F.TYPE_DOUBLE: "f",
    F.TYPE_FLOAT: "f",
    **dict.fromkeys((F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32), "i32"),
    **dict.fromkeys((F.TYPE_UINT32, F.TYPE_FIXED32), "u32"),
    **dict.fromkeys(
        (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64, F.TYPE_UINT64, F.TYPE_FIXED64), "i64"
    ),
}
#: Well-known messages that JSON writes as something else than an object.
WELL_KNOWN = {
    ".google.protobuf.Timestamp": "ts",
    ".google.protobuf.Duration": "dur",
    ".google.protobuf.FieldMask": "mask",
    ".google.protobuf.Struct": "any",
    ".google.protobuf.Value": "any",
    ".google.protobuf.ListValue": "any",
    ".google.protobuf.Any": "any",
    ".google.protobuf.StringValue": "s",
    ".google.protobuf.BytesValue": "s",
    ".google.protobuf.BoolValue": "b",
    ".google.protobuf.DoubleValue": "f",
    ".google.protobuf.FloatValue": "f",
    ".google.protobuf.Int32Value": "i32",
    ".google.protobuf.UInt32Value": "u32",
    ".google.protobuf.Int64Value": "i64",
    ".google.protobuf.UInt64Value": "i64",
}


def lua(descriptor_set: descriptor_pb2.FileDescriptorSet, services: list[ApiService]) -> str:
    """The Lua filter's source: the generated tables, then the checker."""
    messages = _messages(descriptor_set)
    rules, wanted = [], set()
    for service in services:
        for method in service.methods:
            for rule in method.http:
                rules.append((rule, method.input_type))
                if rule.body:
                    wanted.add(_body_type(rule, method.input_type, messages))
    # The first pattern that matches a path wins: those with more fixed text first, so
    # /v1/leaderboards/{m}/{w}:aroundMe is not taken for /v1/leaderboards/{m}/{w}.
    rules.sort(key=lambda r: -len(re.sub(r"\{[^}]*\}", "", r[0].template)))
    routes = [_route(rule, input_type, messages) for rule, input_type in rules]
    types, names = {}, {}
    for type_name in sorted(wanted):
        _describe(type_name, messages, types, names)
    tables = {
        "ROUTES": routes,
        "TYPES": [f"[{_q(t[1:])}] = {{{body}}}" for t, body in types.items()],
        "NAMES": [f"[{_q(t[1:])}] = {_q(n)}" for t, n in names.items()],
    }
    generated = [f"{name} = {{\n" + ",\n".join(rows) + "\n}" for name, rows in tables.items()]
    header = f"REFUSED_HEADER = {_q(REFUSED_HEADER)}"
    return "\n".join([*generated, header, CHECKER.read_text()])


def _messages(descriptor_set) -> dict[str, descriptor_pb2.DescriptorProto]:
    """Every message by its full name with a leading dot, nested ones included."""
    found = {}

    def walk(prefix: str, message: descriptor_pb2.DescriptorProto) -> None:
        name = f"{prefix}.{message.name}"
        found[name] = message
        for nested in message.nested_type:
            walk(name, nested)

    for file in descriptor_set.file:
        for message in file.message_type:
            walk(f".{file.package}" if file.package else "", message)
    return found


def _body_type(rule: HttpRule, input_type: str, messages) -> str:
    """The message a rule's body fills: the request, or one of its fields."""
    if rule.body == "*":
        return input_type
    return next(f for f in messages[input_type].field if f.name == rule.body).type_name


def _route(rule: HttpRule, input_type: str, messages) -> str:
    """{verb, path pattern, body message or false, query names, query names listed}."""
    request = messages[input_type]
    bound = set(re.findall(r"\{([^}=.]+)", rule.template))
    in_query = (
        []
        if rule.body == "*"
        else [f for f in request.field if f.name not in bound and f.name != rule.body]
    )
    query = sorted({n for f in in_query for n in (f.name, f.json_name)})
    body = _q(_body_type(rule, input_type, messages)[1:]) if rule.body else "false"
    listed = ", ".join(f.json_name for f in in_query) or "none"
    allowed = ", ".join(f"[{_q(n)}] = true" for n in query)
    return (
        f"{{{_q(rule.verb)}, {_q(_pattern(rule.template))}, {body}, {{{allowed}}}, {_q(listed)}}}"
    )


def _pattern(template: str) -> str:
    """A Lua pattern matching the paths of a URL template."""
    out, pos = [], 0
    for match in re.finditer(r"\{([^}=]+)(=([^}]*))?\}", template):
        out.append(_escape(template[pos : match.start()]))
        out.append("[^/]+" if match.group(3) in (None, "*") else ".+")
        pos = match.end()
    out.append(_escape(template[pos:]))
    return "^" + "".join(out) + "$"


def _escape(text: str) -> str:
    return re.sub(r"([().%+\-*?\[\]^$])", r"%\1", text)


def _describe(type_name: str, messages, types: dict, names: dict) -> None:
    """Add `type_name` and every message its fields reach to `types` and `names`."""
    if type_name in types or type_name in WELL_KNOWN:
        return
    message = messages[type_name]
    types[type_name] = ""  # marks it as being described: recursive messages end here
    entries, reached = [], []
    for field in message.field:
        spec, more = _spec(field, messages)
        reached += more
        for key in dict.fromkeys((field.json_name, field.name)):
            entries.append(f"[{_q(key)}] = {spec}")
    types[type_name] = ", ".join(entries)
    names[type_name] = ", ".join(f.json_name for f in message.field) or "none"
    for nested in reached:
        _describe(nested, messages, types, names)


def _spec(field: descriptor_pb2.FieldDescriptorProto, messages) -> tuple[str, list[str]]:
    """The field's Lua spec {".proto_name", kind, repeated, extra} and the messages it reaches."""
    repeated = "true" if field.label == F.LABEL_REPEATED else "false"
    name = _q("." + field.name)
    if field.type != F.TYPE_MESSAGE:
        return f"{{{name}, {_q(SCALARS[field.type])}, {repeated}}}", []
    if field.type_name in WELL_KNOWN:
        return f"{{{name}, {_q(WELL_KNOWN[field.type_name])}, {repeated}}}", []
    entry = messages[field.type_name]
    if entry.options.map_entry:
        value = next(f for f in entry.field if f.name == "value")
        if value.type == F.TYPE_MESSAGE and value.type_name not in WELL_KNOWN:
            inner, reached = f"{{'m', {_q(value.type_name[1:])}}}", [value.type_name]
        else:
            kind = WELL_KNOWN.get(value.type_name) or SCALARS[value.type]
            inner, reached = f"{{{_q(kind)}}}", []
        return f"{{{name}, 'map', false, {inner}}}", reached
    return (
        f"{{{name}, 'm', {repeated}, {_q(field.type_name[1:])}}}",
        [field.type_name],
    )


def _q(text: str) -> str:
    """A Lua string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
