"""Envoy's configuration, generated: a bootstrap plus LDS, CDS and EDS files it watches.

The bootstrap never changes; the listener (LDS) and clusters (CDS) are
rendered from the descriptor set, and the endpoints (EDS) come from Consul
(gateway.endpoints). Envoy reloads each file when it is atomically replaced,
so new protos or instances never need an Envoy restart.

Request path through the listener's HTTP filters, in order:
health_check (answers GET /healthz itself: 200, or 503 once Envoy is draining)
→ header_mutation (drops the body check's marker a client might send) → lua
(every error body in the services' shape: error_body.lua) → cors → local rate limit
(429: the gateway's bucket, and a bucket per client address for log-ins,
sign-ups and the intake) → jwt_authn (401) → buffer (request body limit, 413)
→ lua body check (400 naming an unknown or ill-typed field: gateway.body_check)
→ gRPC-JSON transcoder → credential injector (the gateway's secret) → router
(retries, outlier detection, timeouts). The router answers
GET /openapi.json and /docs itself (gateway.docs), with no token and no transcoding.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from gateway import body_check, descriptors, docs, webapp
from gateway.config import GatewaySettings
from gateway.descriptors import ApiService
from services.kit.clients import (  # the headers the gateway sets for the services
    CLIENT_ADDRESS_HEADER,
    CLIENT_USER_AGENT_HEADER,
    GATEWAY_SECRET_HEADER,
)

T = "type.googleapis.com/envoy."
JWKS_CLUSTER = "gateway_jwks"
#: Answered by Envoy itself, with no token: what load balancers and Kubernetes probe.
HEALTH_PATH = "/healthz"
NO_UPSTREAM = "no_upstream"  # a cluster without endpoints, for routes never forwarded
TRACE_CLUSTER = "trace_collector"
ADMIN_CLUSTER = "envoy_admin"
#: Where Prometheus scrapes Envoy: its admin's page, the one path of the metrics listener.
METRICS_PATH = "/stats/prometheus"
#: Trace context a client may send (W3C's and its baggage, B3, Envoy's): dropped before Envoy
#: looks at it, so a client cannot make the mesh record its requests, join another trace or
#: have its baggage copied into every event the request produces.
CLIENT_TRACE_HEADERS = (
    "traceparent", "tracestate", "baggage", "b3", "x-b3-traceid", "x-b3-spanid",
    "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "x-client-trace-id", "x-ot-span-context",
)  # fmt: skip
JWT_PROVIDER = "zentry"
TRANSCODER_FILTER = "envoy.filters.http.grpc_json_transcoder"
#: A stream with nothing on it for this long is closed (services send heartbeats more often).
STREAM_IDLE = "60s"
PER_TRY_TIMEOUT = "5s"
GATEWAY_SECRET = "gateway_secret"
SECRET_SDS_FILE = "gateway-secret.json"
#: Mutual TLS to the services (settings.upstream_tls): Envoy's client certificate and the CA
#: the services' certificates come from, each from an SDS file of its own (Envoy takes one
#: secret per file) that names the PEM files, reloaded when their folder changes.
UPSTREAM_CERTIFICATE = "upstream_certificate"
UPSTREAM_CA = "upstream_ca"
UPSTREAM_TLS_SDS_FILES = {
    UPSTREAM_CERTIFICATE: "gateway-tls-certificate.json",
    UPSTREAM_CA: "gateway-tls-ca.json",
}
#: Client addresses with a bucket of their own at once, at most.
CLIENT_BUCKETS = 65536

#: HTTP status of a local reply → the gRPC code it stands for (number, name).
LOCAL_REPLY_CODES = {
    400: (3, "INVALID_ARGUMENT"),
    401: (16, "UNAUTHENTICATED"),
    403: (7, "PERMISSION_DENIED"),
    404: (5, "NOT_FOUND"),
    413: (8, "RESOURCE_EXHAUSTED"),
    429: (8, "RESOURCE_EXHAUSTED"),
    503: (14, "UNAVAILABLE"),
    504: (4, "DEADLINE_EXCEEDED"),
}

#: Gives every error body the services' shape (see the file).
ERROR_BODY_LUA = (Path(__file__).with_name("error_body.lua")).read_text()


def bootstrap(settings: GatewaySettings) -> dict:
    """Admin on loopback only; listeners and clusters from the files Envoy watches."""
    config_dir = settings.config_dir
    return {
        "node": {"id": "zentry-gateway", "cluster": "zentry-gateway"},
        "admin": {"address": _address(settings.host, settings.admin_port)},
        "dynamic_resources": {
            "lds_config": _watched_file(config_dir / "lds.json"),
            "cds_config": _watched_file(config_dir / "cds.json"),
        },
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": T + "extensions.resource_monitors.downstream_connections.v3."
                        "DownstreamConnectionsConfig",
                        "max_active_downstream_connections": settings.max_connections,
                    },
                }
            ]
        },
    }


def _watched_file(path: Path) -> dict:
    """A config file reloaded when anything is moved into its folder.

    That catches both our atomic renames and the `..data` symlink swap with
    which Kubernetes updates a mounted ConfigMap.
    """
    return {
        "path_config_source": {
            "path": str(path),
            "watched_directory": {"path": str(path.parent)},
        },
        "resource_api_version": "V3",
    }


def eds_path(settings: GatewaySettings, upstream: str) -> str:
    return str(settings.eds_dir / f"{upstream}.json")


def clusters(settings: GatewaySettings, services: list[ApiService]) -> dict:
    """One EDS cluster per upstream (endpoints from Consul), plus the gateway's own JWKS fetch."""
    upstreams = sorted({s.upstream for s in services})
    resources = [_upstream_cluster(settings, name) for name in upstreams]
    resources.append(
        {
            "@type": T + "config.cluster.v3.Cluster",
            "name": JWKS_CLUSTER,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": endpoints(JWKS_CLUSTER, [(settings.host, settings.port)]),
        }
    )
    resources.append(
        {
            "@type": T + "config.cluster.v3.Cluster",
            "name": NO_UPSTREAM,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": endpoints(NO_UPSTREAM, []),
        }
    )
    if settings.trace_collector:
        host, _, port = settings.trace_collector.rpartition(":")
        resources.append(
            {
                "@type": T + "config.cluster.v3.Cluster",
                "name": TRACE_CLUSTER,
                "type": "STRICT_DNS",
                "connect_timeout": "1s",
                "load_assignment": endpoints(TRACE_CLUSTER, [(host, int(port))]),
            }
        )
    if settings.metrics_port:
        resources.append(
            {
                "@type": T + "config.cluster.v3.Cluster",
                "name": ADMIN_CLUSTER,
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": endpoints(ADMIN_CLUSTER, [(settings.host, settings.admin_port)]),
            }
        )
    return {"resources": resources}


def _upstream_cluster(settings: GatewaySettings, name: str) -> dict:
    return {
        "@type": T + "config.cluster.v3.Cluster",
        "name": name,
        "type": "EDS",
        "eds_cluster_config": {
            "eds_config": {
                "path_config_source": {"path": eds_path(settings, name)},
                "resource_api_version": "V3",
            }
        },
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": T + "extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        # A failing instance is ejected at once, before Consul's check notices.
        "outlier_detection": {
            "consecutive_5xx": 3,
            "consecutive_gateway_failure": 2,
            "interval": "1s",
            "base_ejection_time": "5s",
            "max_ejection_percent": 50,
        },
        "ignore_health_on_host_removal": True,
        "circuit_breakers": {"thresholds": [{"max_requests": 4096, "max_pending_requests": 4096}]},
        **_upstream_tls(settings, name),
    }


def _upstream_tls(settings: GatewaySettings, name: str) -> dict:
    """Mutual TLS to the upstream `name`, if the gateway has a certificate: Envoy presents
    it and accepts only a certificate from the CA that names the service (SNI and SAN
    `name`), so an instance of another service, holding the CA's certificate for its own
    name, is refused (services.kit.tls). Nothing without settings.upstream_tls."""
    if settings.upstream_tls is None:
        return {}
    return {
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": T + "extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": name,
                "common_tls_context": {
                    "alpn_protocols": ["h2"],
                    # Envoy offers at most TLS 1.2 to upstreams unless told; gRPC serves 1.3.
                    "tls_params": {"tls_maximum_protocol_version": "TLSv1_3"},
                    "tls_certificate_sds_secret_configs": [
                        _sds_secret(settings, UPSTREAM_CERTIFICATE)
                    ],
                    "combined_validation_context": {
                        "default_validation_context": {
                            "match_typed_subject_alt_names": [
                                {"san_type": "DNS", "matcher": {"exact": name}}
                            ]
                        },
                        "validation_context_sds_secret_config": _sds_secret(settings, UPSTREAM_CA),
                    },
                },
            },
        }
    }


def _sds_secret(settings: GatewaySettings, name: str) -> dict:
    path = settings.config_dir / UPSTREAM_TLS_SDS_FILES[name]
    return {
        "name": name,
        "sds_config": {"path_config_source": {"path": str(path)}, "resource_api_version": "V3"},
    }


def upstream_tls_secrets(settings: GatewaySettings) -> dict[str, dict]:
    """The SDS files of the upstream TLS secrets, by file name; empty without upstream TLS.

    Each names PEM files and watches their folder, so a certificate renewed in place
    (cert-manager's symlink swap in a mounted Secret, or infra's rename) is taken up
    without a restart.
    """
    files = settings.upstream_tls
    if files is None:
        return {}
    secret = T + "extensions.transport_sockets.tls.v3.Secret"
    certificate = {
        "@type": secret,
        "name": UPSTREAM_CERTIFICATE,
        "tls_certificate": {
            "certificate_chain": {"filename": str(files.cert_file)},
            "private_key": {"filename": str(files.key_file)},
            "watched_directory": {"path": str(files.cert_file.parent)},
        },
    }
    ca = {
        "@type": secret,
        "name": UPSTREAM_CA,
        "validation_context": {
            "trusted_ca": {"filename": str(files.ca_file)},
            "watched_directory": {"path": str(files.ca_file.parent)},
        },
    }
    return {
        UPSTREAM_TLS_SDS_FILES[UPSTREAM_CERTIFICATE]: {"resources": [certificate]},
        UPSTREAM_TLS_SDS_FILES[UPSTREAM_CA]: {"resources": [ca]},
    }


def endpoints(cluster: str, addresses: list[tuple[str, int]]) -> dict:
    """A ClusterLoadAssignment (the EDS resource) for `cluster`."""
    return {
        "@type": T + "config.endpoint.v3.ClusterLoadAssignment",
        "cluster_name": cluster,
        "endpoints": [
            {
                "lb_endpoints": [
                    {"endpoint": {"address": _address(host, port)}} for host, port in addresses
                ]
            }
        ],
    }


def listeners(settings: GatewaySettings, services: list[ApiService]) -> dict:
    """The gateway listener. Raises FileNotFoundError without gen/openapi.json (`make protos`)."""
    pages = docs.pages(settings) + webapp.pages(settings)
    manager = {
        "@type": T + "extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "gateway",
        "codec_type": "AUTO",
        "use_remote_address": True,
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "request_timeout": "30s",
        "stream_idle_timeout": "60s",
        "common_http_protocol_options": {
            "idle_timeout": "300s",
            "headers_with_underscores_action": "REJECT_REQUEST",
        },
        # The request's id in every answer: what a client quotes, and what finds its trace.
        "always_set_request_id_in_response": True,
        "early_header_mutation_extensions": [_drop_client_trace_headers()],
        **_tracing(settings),
        "access_log": [_access_log()],
        "local_reply_config": _local_reply_config(),
        "route_config": _routes(settings, services, pages),
        "http_filters": [
            _filter(
                "health_check",
                "extensions.filters.http.health_check.v3.HealthCheck",
                {
                    "pass_through_mode": False,
                    "headers": [{"name": ":path", "string_match": {"exact": HEALTH_PATH}}],
                },
            ),
            # The body check marks its own answers with this header; a client must not, or
            # Envoy's local replies would skip their JSON shape.
            _filter(
                "header_mutation",
                "extensions.filters.http.header_mutation.v3.HeaderMutation",
                {"mutations": {"request_mutations": [{"remove": body_check.REFUSED_HEADER}]}},
            ),
            _filter("cors", "extensions.filters.http.cors.v3.Cors", {}),
            # Before the error body's Lua, so that a flood's 429s cost no Lua (their shape
            # comes from local_reply_config, as every local reply's does).
            _filter(
                "local_ratelimit",
                "extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                _rate_limit(settings, services),
            ),
            _filter(
                "lua",
                "extensions.filters.http.lua.v3.Lua",
                {"default_source_code": {"inline_string": ERROR_BODY_LUA}},
            ),
            _filter(
                "jwt_authn",
                "extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                _jwt(settings, services, pages),
            ),
            _filter(
                "buffer",
                "extensions.filters.http.buffer.v3.Buffer",
                {"max_request_bytes": settings.max_request_bytes},
            ),
            _filter(
                "lua",
                "extensions.filters.http.lua.v3.Lua",
                {"default_source_code": {"inline_string": _body_check(settings, services)}},
                label="body_check",
            ),
            _filter(
                "grpc_json_transcoder",
                "extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
                _transcoder(settings, services),
            ),
            _filter(
                "credential_injector",
                "extensions.filters.http.credential_injector.v3.CredentialInjector",
                _gateway_secret(settings),
            ),
            _filter("router", "extensions.filters.http.router.v3.Router", {}),
        ],
    }
    listener = {
        "@type": T + "config.listener.v3.Listener",
        "name": "gateway",
        "address": _address(settings.listen_host, settings.port),
        "per_connection_buffer_limit_bytes": 1024 * 1024,
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }
    if settings.metrics_port:
        return {"resources": [listener, _metrics_listener(settings)]}
    return {"resources": [listener]}


def _drop_client_trace_headers() -> dict:
    return {
        "name": "envoy.http.early_header_mutation.header_mutation",
        "typed_config": {
            "@type": T + "extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
            "mutations": [{"remove": name} for name in CLIENT_TRACE_HEADERS],
        },
    }


def _tracing(settings: GatewaySettings) -> dict:
    """Envoy's Zipkin tracer: a span for each sampled request, its context passed upstream
    in W3C `traceparent` (what the services read) and B3 headers; nothing when off."""
    if not settings.trace_collector:
        return {}
    zipkin = {
        "@type": T + "config.trace.v3.ZipkinConfig",
        "collector_cluster": TRACE_CLUSTER,
        "collector_endpoint": "/api/v2/spans",
        "collector_endpoint_version": "HTTP_JSON",
        "trace_id_128bit": True,  # W3C trace ids are 128 bits
        "shared_span_context": False,
        "trace_context_option": "USE_B3_WITH_W3C_PROPAGATION",
    }
    return {
        "tracing": {
            "random_sampling": {"value": settings.trace_sampling},
            "provider": {"name": "envoy.tracers.zipkin", "typed_config": zipkin},
        }
    }


def _metrics_listener(settings: GatewaySettings) -> dict:
    """A listener that serves Envoy's Prometheus page and nothing else of its admin."""
    manager = {
        "@type": T + "extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "metrics",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "metrics",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"path": METRICS_PATH, "headers": [_method_is("GET")]},
                            "route": {"cluster": ADMIN_CLUSTER, "timeout": "10s"},
                        },
                        {"match": {"prefix": "/"}, "direct_response": {"status": 404}},
                    ],
                }
            ]
        },
        "http_filters": [_filter("router", "extensions.filters.http.router.v3.Router", {})],
    }
    return {
        "@type": T + "config.listener.v3.Listener",
        "name": "metrics",
        "address": _address(settings.listen_host, settings.metrics_port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }


def _routes(settings: GatewaySettings, services: list[ApiService], pages: list[docs.Page]) -> dict:
    """Routes on the gRPC path (the transcoder rewrites REST paths to it before routing),
    and the pages Envoy answers itself."""
    routes = [_page_route(page) for page in pages]
    for service in services:
        for method in service.methods:
            routes.append(
                {"match": {"path": method.grpc_path}, "route": _route(settings, service, method)}
            )
    # The CORS filter only acts on a route with a route entry, and a REST path matches
    # no gRPC route before transcoding; preflights are answered by the filter itself.
    routes.append(
        {
            "match": {
                "prefix": "/",
                "headers": [{"name": ":method", "string_match": {"exact": "OPTIONS"}}],
            },
            "route": {"cluster": NO_UPSTREAM},
        }
    )
    not_found = '{"code":5,"status":"NOT_FOUND","message":"No such API path."}'
    routes.append(
        {
            "match": {"prefix": "/"},
            "direct_response": {"status": 404, "body": {"inline_string": not_found}},
            "response_headers_to_add": [_header("content-type", "application/json")],
        }
    )
    cors = {
        "@type": T + "extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": [{"exact": origin} for origin in settings.cors_origins],
        "allow_methods": "GET, POST, PATCH, PUT, DELETE, OPTIONS",
        "allow_headers": "authorization, content-type, x-request-id",
        "expose_headers": "x-request-id",
        "max_age": "600",
        "forward_not_matching_preflights": False,
    }
    return {
        "name": "api",
        "validate_clusters": False,  # clusters come from CDS
        "max_direct_response_body_size_bytes": docs.MAX_BODY_BYTES,
        "virtual_hosts": [
            {
                "name": "api",
                "domains": ["*"],
                "routes": routes,
                "typed_per_filter_config": {"envoy.filters.http.cors": cors},
                # Who the client is, for product analytics (its visitor hash and bot
                # filter): set here from the connection, so a client cannot forge them.
                "request_headers_to_add": [
                    _header(
                        CLIENT_ADDRESS_HEADER, "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", True
                    ),
                    _header(CLIENT_USER_AGENT_HEADER, "%REQ(user-agent)%", True),
                ],
            }
        ],
    }


def _page_route(page: docs.Page) -> dict:
    """GET of a page, answered from the config with no transcoding (which would 404 it)."""
    headers = {
        "content-type": page.content_type,
        "x-content-type-options": "nosniff",
        "cache-control": "no-cache",
        **page.headers,
    }
    return {
        "match": {"path": page.path, "headers": [_method_is("GET")]},
        "direct_response": {"status": 200, "body": page.body},
        "response_headers_to_add": [_header(k, v, True) for k, v in headers.items()],
        "typed_per_filter_config": {
            TRANSCODER_FILTER: {"@type": T + "config.route.v3.FilterConfig", "disabled": True}
        },
    }


def _route(settings: GatewaySettings, service: ApiService, method) -> dict:
    """A call answers within the route timeout, retried as its idempotency allows; a stream
    lasts as long as the service keeps it (its heartbeats keep it from going idle), and is
    retried only when it never got in (once it has, its client resumes from its cursor)."""
    if method.streaming:
        retries = _retry_policy(False)
        del retries["per_try_timeout"]  # a try lasts as long as the stream
        return {
            "cluster": service.upstream,
            "timeout": "0s",
            "idle_timeout": STREAM_IDLE,
            "retry_policy": retries,
        }
    return {
        "cluster": service.upstream,
        "timeout": f"{settings.route_timeout_seconds:g}s",
        "retry_policy": _retry_policy(method.idempotent),
    }


def _retry_policy(idempotent: bool) -> dict:
    """Idempotent calls retry UNAVAILABLE too; others only when the request never got in."""
    never_reached = "connect-failure,refused-stream,reset-before-request"
    return {
        "retry_on": f"{never_reached},unavailable" if idempotent else never_reached,
        "num_retries": 2,
        "per_try_timeout": PER_TRY_TIMEOUT,
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {
                    "@type": T + "extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
                },
            }
        ],
        "host_selection_retry_max_attempts": 3,
        "retry_back_off": {"base_interval": "0.025s", "max_interval": "0.25s"},
    }


def _jwt(settings: GatewaySettings, services: list[ApiService], pages: list[docs.Page]) -> dict:
    """Public methods (REST and native gRPC paths) and the API document's pages need no
    token, but one that is sent must be valid (as in each service's auth interceptor);
    everything else needs a token."""
    optional = {
        "requires_any": {"requirements": [{"provider_name": JWT_PROVIDER}, {"allow_missing": {}}]}
    }
    rules = [
        {"match": {"path": page.path, "headers": [_method_is("GET")]}, "requires": optional}
        for page in pages
    ]
    for service in services:
        for method in service.methods:
            if not method.public:
                continue
            rules.append({"match": {"path": method.grpc_path}, "requires": optional})
            for http in method.http:
                rules.append(
                    {
                        "match": {
                            "safe_regex": {"regex": http.path_regex()},
                            "headers": [_method_is(http.verb)],
                        },
                        "requires": optional,
                    }
                )
    rules.append({"match": {"prefix": "/"}, "requires": {"provider_name": JWT_PROVIDER}})
    return {
        "providers": {
            JWT_PROVIDER: {
                "issuer": settings.jwt_issuer,
                "audiences": [settings.jwt_audience],
                "remote_jwks": {
                    "http_uri": {
                        "uri": settings.jwks_url,
                        "cluster": JWKS_CLUSTER,
                        "timeout": "2s",
                    },
                    "cache_duration": "300s",
                    # The JWKS is served through this very listener: do not wait for it to start.
                    "async_fetch": {"fast_listener": True, "failed_refetch_duration": "1s"},
                },
                "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
                "forward": True,  # services check the token again
                "clock_skew_seconds": 5,
                # A token seen before is not verified again (its expiry still is).
                "jwt_cache_config": {"jwt_cache_size": 10000},
            }
        },
        "rules": rules,
        "bypass_cors_preflight": True,
    }


def _transcoder(settings: GatewaySettings, services: list[ApiService]) -> dict:
    return {
        # Inline, so the listener file is the whole config: a proto change reloads
        # it, and a Kubernetes ConfigMap carries it as it is.
        "proto_descriptor_bin": base64.b64encode(settings.descriptor_set.read_bytes()).decode(),
        "services": [service.full_name for service in services],
        "convert_grpc_status": True,
        "print_options": {
            "always_print_primitive_fields": True,
            "always_print_enums_as_ints": False,
            "preserve_proto_field_names": False,
            # A streamed answer (WatchFeed) as server-sent events, one `data:` line each.
            "stream_sse_style_delimited": True,
        },
        "request_validation_options": {
            "reject_unknown_method": True,
            "reject_unknown_query_parameters": True,
            "reject_binding_body_field_collisions": True,
        },
    }


def _rate_limit(settings: GatewaySettings, services: list[ApiService]) -> dict:
    """One bucket for the whole gateway (the ceiling), and for the methods in
    `client_limits` a bucket per method and client address as well (LRU-bounded)."""
    rate_limits, descriptors = [], []
    for service in services:
        for method in service.methods:
            per_minute = settings.client_limits.get(f"{service.full_name}.{method.name}")
            if per_minute is None:
                continue
            paths = [re.escape(method.grpc_path)] + [rule.path_regex() for rule in method.http]
            matches = [
                _method_is("POST"),
                {
                    "name": ":path",
                    "string_match": {"safe_regex": {"regex": f"^(?:{'|'.join(paths)})(?:\\?.*)?$"}},
                },
            ]
            rate_limits.append(
                {
                    "actions": [
                        {
                            "header_value_match": {
                                "descriptor_key": "method",
                                "descriptor_value": method.name,
                                "headers": matches,
                            }
                        },
                        # An IPv6 client usually holds a whole /64: one bucket for it.
                        {"masked_remote_address": {"v6_prefix_mask_len": 64}},
                    ]
                }
            )
            descriptors.append(
                {
                    "entries": [
                        {"key": "method", "value": method.name},
                        {"key": "masked_remote_address"},
                    ],
                    "token_bucket": _per_minute(per_minute),
                }
            )
    return {
        "stat_prefix": "gateway_rate_limit",
        "token_bucket": {
            "max_tokens": settings.rate_limit_burst,
            "tokens_per_fill": settings.rate_limit_per_second,
            "fill_interval": "1s",
        },
        "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        "filter_enforced": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        "response_headers_to_add": [{"header": {"key": "x-ratelimit-limited", "value": "true"}}],
        "rate_limits": rate_limits,
        "descriptors": descriptors,
        # A bucket per address seen lately: an address pushed out starts a full bucket again,
        # and the gateway's bucket above still bounds everything.
        "max_dynamic_descriptors": CLIENT_BUCKETS,
        "always_consume_default_token_bucket": True,
    }


def _per_minute(calls: int) -> dict:
    """`calls` a minute, refilled evenly (Envoy's fill interval >= 50 ms), at most a quarter
    of them at once: a person retrying a typo has room, while a thousand fresh addresses
    cannot send their whole minute in its first second."""
    interval = max(0.05, 60 / calls)
    return {
        "max_tokens": -(-calls // 4),
        "tokens_per_fill": max(1, round(calls * interval / 60)),
        "fill_interval": f"{interval:.3f}s",
    }


def secret_discovery(settings: GatewaySettings) -> dict:
    """The SDS file for the gateway's secret: it names the secret's file, never the secret."""
    return {
        "resources": [
            {
                "@type": T + "extensions.transport_sockets.tls.v3.Secret",
                "name": GATEWAY_SECRET,
                "generic_secret": {"secret": {"filename": str(settings.secret_file)}},
            }
        ]
    }


def _gateway_secret(settings: GatewaySettings) -> dict:
    """Every forwarded request carries the gateway's secret (whatever the client sent in its
    place), so services believe the client headers it sets (services.kit.clients)."""
    return {
        "overwrite": True,
        "credential": {
            "name": "envoy.http.injected_credentials.generic",
            "typed_config": {
                "@type": T + "extensions.http.injected_credentials.generic.v3.Generic",
                "credential": {
                    "name": GATEWAY_SECRET,
                    "sds_config": {
                        "path_config_source": {"path": str(settings.config_dir / SECRET_SDS_FILE)}
                    },
                },
                "header": GATEWAY_SECRET_HEADER,
            },
        },
    }


def _local_reply_config() -> dict:
    """Envoy's own answers (401 from jwt_authn, 429, 503, ...) in the same JSON shape; the
    body check's answers are that shape already."""
    mappers = [
        {
            "filter": {
                "header_filter": {
                    "header": {"name": body_check.REFUSED_HEADER, "present_match": True}
                }
            },
            "body_format_override": {
                "text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"},
                "content_type": "application/json",
            },
        }
    ]
    for status, (code, name) in LOCAL_REPLY_CODES.items():
        mappers.append(
            {
                "filter": {
                    "status_code_filter": {
                        "comparison": {
                            "op": "EQ",
                            "value": {"default_value": status, "runtime_key": f"zentry_{status}"},
                        }
                    }
                },
                "body_format_override": {
                    "json_format": {
                        "code": code,
                        "status": name,
                        "message": "%LOCAL_REPLY_BODY%",
                    }
                },
            }
        )
    return {"mappers": mappers}


def _access_log() -> dict:
    fields = {
        "time": "%START_TIME%",
        "method": "%REQ(:METHOD)%",
        "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
        "status": "%RESPONSE_CODE%",
        "grpc_status": "%GRPC_STATUS%",
        "flags": "%RESPONSE_FLAGS%",
        "duration_ms": "%DURATION%",
        "upstream": "%UPSTREAM_HOST%",
        "request_id": "%REQ(X-REQUEST-ID)%",
        "bytes_in": "%BYTES_RECEIVED%",
        "bytes_out": "%BYTES_SENT%",
        "client": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
    }
    return {
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": T + "extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": {"json_format": fields},
        },
    }


def _filter(name: str, type_name: str, config: dict, label: str = "") -> dict:
    """An HTTP filter; `label` names a second filter of a kind apart from the first."""
    return {
        "name": f"envoy.filters.http.{name}" + (f".{label}" if label else ""),
        "typed_config": {"@type": T + type_name, **config},
    }


def _body_check(settings: GatewaySettings, services: list[ApiService]) -> str:
    return body_check.lua(descriptors.load(settings.descriptor_set), services)


def _method_is(verb: str) -> dict:
    return {"name": ":method", "string_match": {"exact": verb}}


def _address(host: str, port: int) -> dict:
    return {"socket_address": {"address": host, "port_value": port}}


def _header(key: str, value: str, overwrite: bool = False) -> dict:
    header = {"header": {"key": key, "value": value}}
    if overwrite:
        header["append_action"] = "OVERWRITE_IF_EXISTS_OR_ADD"
    return header
