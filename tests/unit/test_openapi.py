"""The OpenAPI document `make protos` writes (gen/openapi.json), against the descriptor set.

It must describe exactly what the gateway serves: one operation per
`google.api.http` binding, the token rules of Envoy's jwt_authn, and the JSON
Envoy's transcoder reads and prints.
"""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from google.protobuf import descriptor_pb2

from gateway import descriptors, envoy_config
from gateway.config import DESCRIPTOR_SET, OPENAPI_DOCUMENT
from services.user.roles import ROLES

FieldType = descriptor_pb2.FieldDescriptorProto
VERBS = ("get", "put", "post", "delete", "patch")
SIXTY_FOUR = {
    FieldType.TYPE_INT64: "int64",
    FieldType.TYPE_SINT64: "int64",
    FieldType.TYPE_SFIXED64: "int64",
    FieldType.TYPE_UINT64: "uint64",
    FieldType.TYPE_FIXED64: "uint64",
}


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(OPENAPI_DOCUMENT.read_text())


@pytest.fixture(scope="module")
def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    return descriptors.load(DESCRIPTOR_SET)


@pytest.fixture(scope="module")
def methods(descriptor_set) -> list[descriptors.Method]:
    return [m for s in descriptors.api_services(descriptor_set) for m in s.methods]


def operations(document: dict) -> dict[tuple[str, str], dict]:
    return {
        (verb.upper(), path): operation
        for path, item in document["paths"].items()
        for verb, operation in item.items()
        if verb in VERBS
    }


def bindings(methods) -> dict[tuple[str, str], descriptors.Method]:
    return {
        (rule.verb, re.sub(r"\{([^}=]+)=[^}]*\}", r"{\1}", rule.template)): method
        for method in methods
        for rule in method.http
    }


def api_messages(descriptor_set, document) -> list[tuple[descriptor_pb2.DescriptorProto, dict]]:
    """(message, its schema) for every zentry message the document has a schema of."""
    schemas = document["components"]["schemas"]
    return [
        (message, schemas[message.name])
        for file in descriptor_set.file
        if file.package.startswith("zentry.")
        for message in file.message_type
        if message.name in schemas
    ]


def fields_of_type(descriptor_set, document, test) -> list[tuple[str, dict, FieldType]]:
    """(message.field, property schema, field) for the schema fields `test` picks."""
    return [
        (f"{message.name}.{field.name}", schema["properties"][field.json_name], field)
        for message, schema in api_messages(descriptor_set, document)
        for field in message.field
        if test(field)
    ]


def test_it_is_openapi_3_with_a_title(document):
    assert document["openapi"].startswith("3.0.")
    assert document["info"]["title"] and document["info"]["version"]


def test_one_operation_per_http_binding(document, methods):
    assert set(operations(document)) == set(bindings(methods))
    ids = [op["operationId"] for op in operations(document).values()]
    assert len(ids) == len(set(ids)), "operationIds are unique"


def test_path_parameters_match_their_templates(document):
    for (verb, path), operation in operations(document).items():
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{([^}]+)\}", path)), f"{verb} {path}"


def test_public_operations_need_no_token_and_the_others_a_bearer_jwt(document, methods):
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert document["security"] == [{"bearer": []}]
    by_binding = bindings(methods)
    public = set()
    for key, operation in operations(document).items():
        if by_binding[key].public:
            assert operation["security"] == [], key
            public.add(key)
        else:
            assert "security" not in operation, f"{key} inherits the bearer requirement"
    assert public == {
        ("POST", "/v1/users"),
        ("POST", "/v1/sessions"),
        ("POST", "/v1/sessions:refresh"),
        ("GET", "/.well-known/jwks.json"),
        ("POST", "/v1/analytics/events:batchCreate"),
    }


def test_operations_that_need_a_role_say_which(document, methods):
    by_binding = bindings(methods)
    needing = {
        key: operation["description"]
        for key, operation in operations(document).items()
        if by_binding[key].role
    }
    assert set(needing) == {
        ("GET", "/v1/analytics/events/{name}/counts"),
        ("GET", "/v1/analytics/events/{name}/breakdown"),
        ("GET", "/v1/analytics/topPages"),
        ("GET", "/v1/analytics/traffic"),
        ("GET", "/v1/analytics/funnels"),
        ("GET", "/v1/analytics/retention"),
    }
    named = {method.role for method in methods if method.role}
    assert named <= set(ROLES), "an operator can grant every role an RPC needs"
    assert all(
        d.endswith("Needs a token with the `admin` role (403 without it).")
        for d in needing.values()
    )


def test_64_bit_integers_are_strings_of_digits(descriptor_set, document):
    found = fields_of_type(descriptor_set, document, lambda f: f.type in SIXTY_FOUR)
    assert "Standing.rank" in {name for name, _, _ in found}
    for name, prop, field in found:
        schema = prop["items"] if field.label == FieldType.LABEL_REPEATED else prop
        assert schema["type"] == "string", name
        assert schema["format"] == SIXTY_FOUR[field.type], name
        extreme = {"int64": "-9223372036854775808", "uint64": "18446744073709551615"}
        assert re.search(schema["pattern"], extreme[schema["format"]]), name
        assert not re.search(schema["pattern"], "12.5"), name


def test_timestamps_are_rfc_3339_date_times(descriptor_set, document):
    found = fields_of_type(
        descriptor_set, document, lambda f: f.type_name == ".google.protobuf.Timestamp"
    )
    assert "SleepEntry.start_time" in {name for name, _, _ in found}
    for name, prop, _ in found:
        assert (prop["type"], prop["format"]) == ("string", "date-time"), name
    counts = operations(document)[("GET", "/v1/analytics/events/{name}/counts")]
    start = next(p for p in counts["parameters"] if p["name"] == "startTime")
    assert start["schema"] == {"type": "string", "format": "date-time"}


def test_durations_are_seconds_with_an_s(descriptor_set, document):
    found = fields_of_type(
        descriptor_set, document, lambda f: f.type_name == ".google.protobuf.Duration"
    )
    assert "User.sleep_goal" in {name for name, _, _ in found}
    for name, prop, _ in found:
        assert prop["type"] == "string", name
        for good in ("1.5s", "28800s", "0s", "-3.000000001s"):
            assert re.search(prop["pattern"], good), (name, good)
        for bad in ("8h", "1.5", "PT8H"):
            assert not re.search(prop["pattern"], bad), (name, bad)


def test_names_are_lower_camel_case(document):
    for name, schema in document["components"]["schemas"].items():
        for prop in schema.get("properties", {}):
            assert re.fullmatch(r"@type|[a-z][a-zA-Z0-9]*", prop), f"{name}.{prop}"
    for key, operation in operations(document).items():
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query":
                assert re.fullmatch(r"[a-z][a-zA-Z0-9.]*", parameter["name"]), key


def test_enums_are_strings_and_field_masks_comma_separated(document):
    for name, schema in document["components"]["schemas"].items():
        for prop_name, prop in schema.get("properties", {}).items():
            if "enum" in prop:
                assert prop["type"] == "string", f"{name}.{prop_name}"
    patch = operations(document)[("PATCH", "/v1/users/{username}")]
    mask = next(p for p in patch["parameters"] if p["name"] == "updateMask")
    assert mask["schema"]["type"] == "string"


def test_a_path_field_is_not_asked_for_again_in_the_body(document):
    follow = operations(document)[("POST", "/v1/users/{username}:follow")]
    body = follow["requestBody"]
    assert body["required"] is False
    assert "username" not in body["content"]["application/json"]["schema"].get("properties", {})


def test_empty_answers_are_empty_objects(document):
    delete = operations(document)[("DELETE", "/v1/sleepEntries/{id}")]
    schema = delete["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.validate({}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"id": "x"}, schema)


def error_validator(document) -> jsonschema.Validator:
    """OpenAPI 3.0 schemas are JSON Schema draft 4, give or take; refs resolve in the document."""
    return jsonschema.Draft4Validator({**document, "$ref": "#/components/schemas/Error"})


def test_every_operation_answers_errors_in_the_gateway_shape(document):
    for key, operation in operations(document).items():
        assert operation["responses"]["default"] == {"$ref": "#/components/responses/Error"}, key
    error = document["components"]["responses"]["Error"]["content"]["application/json"]
    assert error["schema"] == {"$ref": "#/components/schemas/Error"}
    schemas = document["components"]["schemas"]
    assert set(schemas["Error"]["required"]) == {"code", "status", "message"}
    assert "Status" not in schemas, "the plugin's google.rpc.Status is not what Envoy answers"


@pytest.mark.parametrize(
    "body",
    [
        {  # a service's INVALID_ARGUMENT, through convert_grpc_status and the Lua filter
            "code": 3,
            "status": "INVALID_ARGUMENT",
            "message": "time_zone: unknown time zone 'Nowhere/Special'",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": "time_zone", "description": "unknown time zone"}],
                }
            ],
        },
        {"code": 5, "status": "NOT_FOUND", "message": "No user named 'bob'.", "details": []},
        {"code": 16, "status": "UNAUTHENTICATED", "message": "Jwt is missing"},
    ],
)
def test_the_gateways_error_bodies_fit_the_error_schema(document, body):
    error_validator(document).validate(body)


def test_envoys_own_replies_fit_the_error_schema(document):
    """The local replies gateway/envoy_config.py formats (401, 404, 413, 429, 503, ...)."""
    validator = error_validator(document)
    for status, (code, name) in envoy_config.LOCAL_REPLY_CODES.items():
        validator.validate({"code": code, "status": name, "message": f"HTTP {status}"})
    for mapper in envoy_config._local_reply_config()["mappers"]:
        if "header_filter" in mapper["filter"]:
            continue  # the body check's own answers, already in the shape (test_body_check)
        keys = set(mapper["body_format_override"]["json_format"])
        assert set(document["components"]["schemas"]["Error"]["required"]) <= keys


@pytest.mark.parametrize(
    "body",
    [
        {"code": 3, "message": "no status"},
        {"code": 3, "status": "INVALID", "message": "unknown code name"},
        {"code": "3", "status": "INVALID_ARGUMENT", "message": "code is a number"},
        {
            "code": 3,
            "status": "INVALID_ARGUMENT",
            "message": "a BadRequest without fieldViolations",
            "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest"}],
        },
    ],
)
def test_other_shapes_do_not_fit(document, body):
    with pytest.raises(jsonschema.ValidationError):
        error_validator(document).validate(body)


def test_every_reference_resolves(document):
    text = json.dumps(document)
    for ref in set(re.findall(r'"\$ref": "#/([^"]+)"', text)):
        node = document
        for part in ref.split("/"):
            node = node[part]  # KeyError names a dangling reference
