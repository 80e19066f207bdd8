"""What the gateway learns from the descriptor set: the API services and their HTTP rules.

The protos are the one place the REST surface is defined; everything here is
read from `google.api.http`, the standard `idempotency_level` option and
Zentry's `(zentry.api.v1.public)` option.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2
from zentry.api.v1 import access_pb2

API_PACKAGE = re.compile(r"zentry\.(?P<domain>[a-z_]+)\.v\d+")
HTTP_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class HttpRule:
    verb: str  # GET, POST, ...
    template: str  # e.g. /v1/users/{username}:follow
    body: str = ""  # the request field the JSON body fills: "*" for all, "" for none

    def path_regex(self) -> str:
        """A RE2 regex for request paths of this template (without query string)."""
        out, pos = [], 0
        for match in re.finditer(r"\{([^}=]+)(=([^}]*))?\}", self.template):
            out.append(re.escape(self.template[pos : match.start()]))
            out.append("[^/]+" if match.group(3) in (None, "*") else ".+")
            pos = match.end()
        out.append(re.escape(self.template[pos:]))
        return "".join(out)


@dataclass(frozen=True)
class Method:
    service: str  # fully qualified, e.g. zentry.user.v1.UserService
    name: str
    public: bool
    idempotent: bool
    http: tuple[HttpRule, ...]
    input_type: str = ""  # fully qualified, with a leading dot: .zentry.user.v1.GetUserRequest
    output_type: str = ""
    role: str = ""  # `(zentry.api.v1.role)`: the role a caller's token must carry, if any
    streaming: bool = False  # answers with a stream of messages (server streaming)

    @property
    def grpc_path(self) -> str:
        return f"/{self.service}/{self.name}"


@dataclass(frozen=True)
class ApiService:
    full_name: str
    upstream: str  # the Consul service name, e.g. "user"
    methods: tuple[Method, ...]


def load(path: Path) -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())


def api_services(descriptor_set: descriptor_pb2.FileDescriptorSet) -> list[ApiService]:
    """Every service of a `zentry.<domain>.vN` package; its upstream is `<domain>`."""
    found = []
    for file in descriptor_set.file:
        match = API_PACKAGE.fullmatch(file.package)
        if not match:
            continue
        for service in file.service:
            full_name = f"{file.package}.{service.name}"
            methods = tuple(_method(full_name, m) for m in service.method)
            found.append(ApiService(full_name, match["domain"], methods))
    return sorted(found, key=lambda s: s.full_name)


def _method(service: str, method: descriptor_pb2.MethodDescriptorProto) -> Method:
    options = method.options
    # Options stay serialized in a FileDescriptorSet; reparse them with our extensions known.
    parsed = descriptor_pb2.MethodOptions.FromString(options.SerializeToString())
    rule: http_pb2.HttpRule = parsed.Extensions[annotations_pb2.http]
    rules = [rule, *rule.additional_bindings] if rule.WhichOneof("pattern") else []
    http = tuple(
        HttpRule(verb.upper(), getattr(r, verb), r.body)
        for r in rules
        for verb in HTTP_VERBS
        if r.WhichOneof("pattern") == verb
    )
    level = parsed.idempotency_level
    return Method(
        service=service,
        name=method.name,
        public=parsed.Extensions[access_pb2.public],
        role=parsed.Extensions[access_pb2.role],
        idempotent=level in (parsed.NO_SIDE_EFFECTS, parsed.IDEMPOTENT)
        or any(r.verb == "GET" for r in http),
        http=http,
        input_type=method.input_type,
        output_type=method.output_type,
        streaming=method.server_streaming,
    )
