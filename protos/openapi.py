"""The REST API's OpenAPI 3 document, gen/openapi.json (written by protos/generate.py).

protoc-gen-openapi (gnostic, pinned in infra/toolchain/protoc-gen-openapi) makes
it from the `google.api.http` rules and the proto comments, already with the
proto3 JSON names Envoy's transcoder uses (lowerCamelCase), timestamps as
`date-time`, durations as "1.5s" strings, enums by name and field masks as
comma-separated strings. `finish` adds what the gateway does that the plugin
cannot know:

- 64-bit integers are JSON strings of digits (`format: int64` or `uint64`);
- a field bound in the path is not also asked for in a `body: "*"` body (the
  transcoder refuses a body that names it differently), and a body left with
  nothing to say is optional;
- google.protobuf.Empty answers `{}`;
- a server-streaming method answers a stream of server-sent events
  (`text/event-stream`), each `data:` line one message (the transcoder's
  `stream_sse_style_delimited`);
- every error is the gateway's JSON body (`Error`: code, status, message and
  details such as google.rpc.BadRequest): the `default` response everywhere;
- a bearer JWT is needed except by `(zentry.api.v1.public)` methods
  (`security: []`), as Envoy's jwt_authn rules say; a `(zentry.api.v1.role)`
  method says which role its token needs.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
from pathlib import Path

import grpc
import yaml
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from gateway import descriptors

REPO = Path(__file__).resolve().parent.parent
PLUGIN = REPO / ".tools" / "bin" / "protoc-gen-openapi"
DOCUMENT = REPO / "gen" / "openapi.json"
#: Any Go import path will do: the plugin needs one per file, ours declare none.
GO_PACKAGE_ROOT = "zentry.local/protos"
BEARER = "bearer"
ERROR_REF = "#/components/responses/Error"
FieldType = descriptor_pb2.FieldDescriptorProto
SIGNED_64 = {FieldType.TYPE_INT64, FieldType.TYPE_SINT64, FieldType.TYPE_SFIXED64}
UNSIGNED_64 = {FieldType.TYPE_UINT64, FieldType.TYPE_FIXED64}
WRAPPERS_64 = {".google.protobuf.Int64Value": "int64", ".google.protobuf.UInt64Value": "uint64"}
EMPTY = ".google.protobuf.Empty"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"

DESCRIPTION = """\
Zentry's REST API, as its gateway (Envoy's gRPC-JSON transcoder) serves it; \
generated from protos/ by `make protos`.

Bodies and answers follow the proto3 JSON mapping: lowerCamelCase names \
(the proto's snake_case names are accepted too), 64-bit integers as strings, \
timestamps in RFC 3339 (`2026-11-20T22:10:00Z`), durations in seconds with an \
`s` suffix (`"1.5s"`), enums by name, field masks as comma-separated field names \
(`updateMask=displayName,timeZone`).

Everything but signing up, logging in, the JWKS and app analytics events needs \
`Authorization: Bearer <accessToken>`, the token `POST /v1/sessions` answers. \
Errors come as JSON with the HTTP status matching the gRPC code: see `Error`."""


class _Loader(yaml.SafeLoader):
    """YAML without YAML 1.1's timestamps: a date-like string stays a string."""


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def write(includes: list[str], sources: list[str], descriptor_set: Path) -> Path:
    """Generate, finish and write the document; returns its path.

    Raises FileNotFoundError when the plugin is not installed (`make tools`),
    RuntimeError when protoc fails, ValueError when the document and the
    descriptor set disagree on the operations.
    """
    raw = generate(includes, sources)
    document = finish(raw, descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes()))
    DOCUMENT.parent.mkdir(parents=True, exist_ok=True)
    DOCUMENT.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    return DOCUMENT


def generate(includes: list[str], sources: list[str]) -> dict:
    """protoc-gen-openapi's document for `sources`, as it writes it."""
    if not PLUGIN.exists():
        raise FileNotFoundError(f"{PLUGIN} is missing; run `make tools`")
    mappings = ",".join(f"M{source}={GO_PACKAGE_ROOT}/{Path(source).parent}" for source in sources)
    with tempfile.TemporaryDirectory() as out:
        code = protoc.main(
            [
                "protoc",
                *includes,
                f"--plugin=protoc-gen-openapi={PLUGIN}",
                f"--openapi_out={out}",
                f"--openapi_opt=enum_type=string,{mappings}",
                *sources,
            ]
        )
        if code != 0:
            raise RuntimeError("protoc-gen-openapi failed; the lines above say why")
        return yaml.load((Path(out) / "openapi.yaml").read_text(), Loader=_Loader)


def finish(raw: dict, descriptor_set: descriptor_pb2.FileDescriptorSet) -> dict:
    """The plugin's document made to say what the gateway accepts and answers (see above)."""
    doc = copy.deepcopy(raw)
    messages = _messages(descriptor_set)
    doc["info"] = {"title": "Zentry API", "version": "v1", "description": DESCRIPTION}
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    _mark_64_bit_fields(schemas, messages)
    clash = set(schemas) & set(_error_schemas())
    if clash:
        raise ValueError(f"proto messages named like the error schemas: {sorted(clash)}")
    schemas.update(_error_schemas())
    doc["components"]["responses"] = {
        "Error": {
            "description": "An error, with the HTTP status that matches its gRPC code.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    }
    doc["components"]["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "The `accessToken` of `POST /v1/sessions` (RS256).",
        }
    }
    doc["security"] = [{BEARER: []}]
    bindings = _bindings(descriptor_set)
    _check_operations(doc, bindings)
    for (verb, path), (method, rule) in bindings.items():
        operation = doc["paths"][path][verb.lower()]
        if method.public:
            operation["security"] = []
        if method.role:
            needs = f"Needs a token with the `{method.role}` role (403 without it)."
            operation["description"] = f"{operation.get('description', '')}\n\n{needs}".strip()
        _mark_64_bit_parameters(operation, messages, method.input_type)
        if rule.body == "*":
            _drop_path_fields_from_body(operation, schemas, _path_fields(rule.template))
        if method.output_type == EMPTY:
            operation["responses"]["200"]["content"] = {
                "application/json": {"schema": {"type": "object", "maxProperties": 0}}
            }
        if method.streaming:
            ok = operation["responses"]["200"]
            ok["description"] = "Server-sent events: each `data:` line is one message, as JSON."
            ok["content"] = {"text/event-stream": ok["content"].pop("application/json")}
        operation["responses"]["default"] = {"$ref": ERROR_REF}
    _drop_unused_schemas(doc)
    return doc


def openapi_path(template: str) -> str:
    """An HTTP rule's path template as an OpenAPI path: `{name=users/*}` becomes `{name}`."""
    return re.sub(r"\{([^}=]+)=[^}]*\}", r"{\1}", template)


def _bindings(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
) -> dict[tuple[str, str], tuple[descriptors.Method, descriptors.HttpRule]]:
    """(verb, OpenAPI path) → its method and rule, for every binding the gateway serves."""
    found = {}
    for service in descriptors.api_services(descriptor_set):
        for method in service.methods:
            for rule in method.http:
                found[(rule.verb, openapi_path(rule.template))] = (method, rule)
    return found


def _check_operations(doc: dict, bindings: dict) -> None:
    """Raise ValueError unless the document has one operation per binding, and no other."""
    documented = {
        (verb.upper(), path)
        for path, item in doc.get("paths", {}).items()
        for verb in item
        if verb in ("get", "put", "post", "delete", "patch")
    }
    if documented != set(bindings):
        missing = sorted(set(bindings) - documented)
        extra = sorted(documented - set(bindings))
        raise ValueError(f"operations missing from the document: {missing}; not served: {extra}")


def _messages(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
) -> dict[str, tuple[str, descriptor_pb2.DescriptorProto]]:
    """Fully qualified name (with a leading dot) → (the plugin's schema name, DescriptorProto)."""
    found = {}

    def visit(prefix: str, schema_prefix: str, message: descriptor_pb2.DescriptorProto) -> None:
        name = f"{prefix}.{message.name}"
        schema = f"{schema_prefix}{message.name}"
        found[name] = (schema, message)
        for nested in message.nested_type:
            visit(name, f"{schema}_", nested)

    for file in descriptor_set.file:
        for message in file.message_type:
            visit(f".{file.package}" if file.package else "", "", message)
    return found


def _sixty_four(field: descriptor_pb2.FieldDescriptorProto, messages: dict) -> tuple[str, str]:
    """("int64" or "uint64" or "", where in the property schema) for a field."""
    if field.type in SIGNED_64:
        kind = "int64"
    elif field.type in UNSIGNED_64:
        kind = "uint64"
    else:
        kind = WRAPPERS_64.get(field.type_name, "")
    entry = messages.get(field.type_name, (None, None))[1]
    if entry is not None and entry.options.map_entry:
        value = next(f for f in entry.field if f.name == "value")
        return _sixty_four(value, messages)[0], "additionalProperties"
    if field.label == FieldType.LABEL_REPEATED:
        return kind, "items"
    return kind, ""


def _as_digits(schema: dict, kind: str) -> None:
    schema["type"] = "string"
    schema["format"] = kind
    schema["pattern"] = "^-?[0-9]+$" if kind == "int64" else "^[0-9]+$"


def _mark_64_bit_fields(schemas: dict, messages: dict) -> None:
    """Raises ValueError when a schema's name fits two messages (the plugin names by short name)."""
    by_schema = {}
    for full_name, (schema_name, message) in messages.items():
        by_schema.setdefault(schema_name, []).append((full_name, message))
    for name, schema in schemas.items():
        candidates = by_schema.get(name, [])
        if len(candidates) > 1:
            raise ValueError(f"schema {name} could be any of {[n for n, _ in candidates]}")
        if not candidates:
            continue
        for field in candidates[0][1].field:
            kind, where = _sixty_four(field, messages)
            prop = schema.get("properties", {}).get(field.json_name)
            if kind and prop is not None:
                _as_digits(prop[where] if where else prop, kind)


def _mark_64_bit_parameters(operation: dict, messages: dict, input_type: str) -> None:
    """Path and query parameters are request fields (dotted paths for nested ones)."""
    for parameter in operation.get("parameters", []):
        message = messages.get(input_type, (None, None))[1]
        field = None
        for part in parameter["name"].split("."):
            if message is None:
                field = None
                break
            field = next((f for f in message.field if part in (f.json_name, f.name)), None)
            if field is None:
                break
            message = messages.get(field.type_name, (None, None))[1]
        if field is not None:
            kind, where = _sixty_four(field, messages)
            if kind:
                _as_digits(parameter["schema"][where] if where else parameter["schema"], kind)


def _path_fields(template: str) -> set[str]:
    """The top-level request fields a path template binds."""
    return {match.split(".")[0] for match in re.findall(r"\{([^}=]+)", template)}


def _drop_path_fields_from_body(operation: dict, schemas: dict, fields: set[str]) -> None:
    """A `body: "*"` body is the request message without the fields the path binds."""
    body = operation.get("requestBody")
    if not body or not fields:
        return
    media = body["content"]["application/json"]
    ref = media["schema"].get("$ref", "")
    schema = copy.deepcopy(schemas[ref.rsplit("/", 1)[-1]]) if ref else media["schema"]
    names = {_camel(field) for field in fields} | fields
    properties = {k: v for k, v in schema.get("properties", {}).items() if k not in names}
    required = [name for name in schema.get("required", []) if name not in names]
    if len(properties) == len(schema.get("properties", {})):
        return
    schema.pop("required", None)
    schema.pop("properties", None)
    if properties:
        schema["properties"] = properties
    else:
        schema["description"] = "Nothing beyond the path: send no body, or {}."
    if required:
        schema["required"] = required
    media["schema"] = schema
    body["required"] = bool(required)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _error_schemas() -> dict:
    """The gateway's error body: converted gRPC statuses and Envoy's own replies alike."""
    names = [code.name for code in grpc.StatusCode if code is not grpc.StatusCode.OK]
    return {
        "Error": {
            "type": "object",
            "description": (
                "Every error the gateway answers. The HTTP status follows the gRPC code: "
                "400 INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE, "
                "401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND, "
                "409 ALREADY_EXISTS or ABORTED, 413 and 429 RESOURCE_EXHAUSTED, "
                "503 UNAVAILABLE, 504 DEADLINE_EXCEEDED."
            ),
            "required": ["code", "status", "message"],
            "properties": {
                "code": {
                    "type": "integer",
                    "format": "int32",
                    "minimum": 1,
                    "maximum": 16,
                    "description": "The gRPC status code, e.g. 3.",
                },
                "status": {
                    "type": "string",
                    "enum": names,
                    "description": "The code's name, e.g. INVALID_ARGUMENT.",
                },
                "message": {"type": "string", "description": "What went wrong, for a person."},
                "details": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/ErrorDetail"},
                    "description": (
                        "Machine-readable details, e.g. a google.rpc.BadRequest naming "
                        "the invalid fields. Absent from errors Envoy answers itself "
                        "(401 without a valid token, 404 for unknown paths, 413, 429)."
                    ),
                },
            },
        },
        "ErrorDetail": {
            "description": "A google.protobuf.Any: `@type` names the detail's type.",
            "anyOf": [
                {"$ref": "#/components/schemas/BadRequest"},
                {
                    "type": "object",
                    "required": ["@type"],
                    "properties": {"@type": {"type": "string", "not": {"enum": [BAD_REQUEST]}}},
                    "additionalProperties": True,
                },
            ],
        },
        "BadRequest": {
            "type": "object",
            "description": "google.rpc.BadRequest: which request fields are invalid, and why.",
            "required": ["@type", "fieldViolations"],
            "properties": {
                "@type": {"type": "string", "enum": [BAD_REQUEST]},
                "fieldViolations": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/FieldViolation"},
                },
            },
        },
        "FieldViolation": {
            "type": "object",
            "required": ["field"],
            "properties": {
                "field": {
                    "type": "string",
                    "description": "The request field, as the proto names it, e.g. time_zone.",
                },
                "description": {"type": "string"},
            },
        },
    }


def _drop_unused_schemas(doc: dict) -> None:
    """Remove the schemas nothing refers to any more (the plugin's Status, replaced bodies)."""
    schemas = doc["components"]["schemas"]
    outside = {k: v for k, v in doc.items() if k != "components"}
    outside["responses"] = doc["components"].get("responses", {})
    wanted, todo = set(), _refs(outside)
    while todo:
        name = todo.pop()
        if name not in wanted and name in schemas:
            wanted.add(name)
            todo |= _refs(schemas[name])
    for name in set(schemas) - wanted:
        del schemas[name]


def _refs(node: object) -> set[str]:
    """Names of the component schemas `node` refers to."""
    if isinstance(node, dict):
        found = set()
        for key, value in node.items():
            if key == "$ref" and value.startswith("#/components/schemas/"):
                found.add(value.rsplit("/", 1)[-1])
            else:
                found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()
