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
from services.kit.settings import ConfigError, Env


@pytest.fixture(scope="module")
def services():
    return descriptors.api_services(descriptors.load(DESCRIPTOR_SET))


@pytest.fixture(scope="module")
def settings():
    return GatewaySettings.load(Env({}))


def methods_by_name(services):
    return {m.name: m for s in services for m in s.methods}


def test_each_package_is_one_upstream_named_by_its_domain(services):
    assert {(s.full_name, s.upstream) for s in services} >= {
        ("zentry.user.v1.UserService", "user"),
        ("zentry.sleep.v1.SleepService", "sleep"),
    }


def test_the_user_service_and_its_http_rules(services):
    methods = methods_by_name([s for s in services if s.upstream == "user"])
    assert methods["FollowUser"].http == (HttpRule("POST", "/v1/users/{username}:follow", "*"),)
    assert {n for n, m in methods.items() if m.public} == {
        "CreateUser",
        "CreateSession",
        "RefreshSession",
        "GetJwks",
    }
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
        "header_mutation",
        "cors",
        "local_ratelimit",
        "lua",
        "jwt_authn",
        "buffer",
        "body_check",
        "grpc_json_transcoder",
        "credential_injector",
        "router",
    ]


OPTIONAL_TOKEN = {
    "requires_any": {"requirements": [{"provider_name": "zentry"}, {"allow_missing": {}}]}
}
DOC_PAGES = {
    "/openapi.json",
    "/docs",
    "/docs/init.js",
    "/docs/swagger-ui-bundle.js",
    "/docs/swagger-ui.css",
}
WEB_APP_PAGES = {"/", "/app.js", "/app.css"}


def jwt_config(settings, services) -> dict:
    manager = http_filters(settings, services)
    return next(f for f in manager["http_filters"] if f["name"].endswith("jwt_authn"))[
        "typed_config"
    ]


def test_only_public_methods_skip_the_token(settings, services):
    jwt = jwt_config(settings, services)
    open_rules = [r["match"] for r in jwt["rules"] if r["requires"] == OPTIONAL_TOKEN]
    open_paths = {m.get("path") for m in open_rules} - {None} - DOC_PAGES - WEB_APP_PAGES
    assert open_paths == {
        "/zentry.user.v1.UserService/CreateUser",
        "/zentry.user.v1.UserService/CreateSession",
        "/zentry.user.v1.UserService/RefreshSession",
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
        ("POST", "/v1/sessions:refresh"),
        ("GET", re.escape("/.well-known/jwks.json")),
        ("POST", re.escape("/v1/analytics/events:batchCreate")),
    }
    assert all("requires" in r for r in jwt["rules"]), "no rule skips a sent token's check"
    assert jwt["rules"][-1] == {"match": {"prefix": "/"}, "requires": {"provider_name": "zentry"}}
    provider = jwt["providers"]["zentry"]
    assert provider["clock_skew_seconds"] == 5 and provider["forward"] is True


def routes_of(settings, services) -> list[dict]:
    return http_filters(settings, services)["route_config"]["virtual_hosts"][0]["routes"]


def page_routes(settings, services) -> dict[str, dict]:
    routes = routes_of(settings, services)
    return {
        r["match"]["path"]: r for r in routes if "direct_response" in r and "path" in r["match"]
    }


def headers_of(route: dict) -> dict[str, str]:
    return {h["header"]["key"]: h["header"]["value"] for h in route["response_headers_to_add"]}


def test_the_api_document_and_its_reference_are_answered_by_envoy(settings, services):
    pages = page_routes(settings, services)
    assert set(pages) >= DOC_PAGES
    types = {path: headers_of(pages[path])["content-type"] for path in DOC_PAGES}
    assert types["/openapi.json"] == "application/json"
    assert types["/docs"].startswith("text/html")
    assert types["/docs/swagger-ui-bundle.js"].startswith("text/javascript")
    assert types["/docs/swagger-ui.css"].startswith("text/css")
    for path in DOC_PAGES:
        route = pages[path]
        assert route["match"]["headers"] == [{"name": ":method", "string_match": {"exact": "GET"}}]
        assert route["direct_response"]["status"] == 200
        disabled = route["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]
        assert disabled["disabled"] is True, f"{path}: the transcoder would answer 404"
        assert path.startswith("/docs") or path == "/openapi.json"
    served = json.loads(pages["/openapi.json"]["direct_response"]["body"]["inline_string"])
    assert served == json.loads(settings.openapi_document.read_text()), "gen/openapi.json as is"


def test_the_documentation_needs_no_token(settings, services):
    rules = jwt_config(settings, services)["rules"]
    open_pages = {
        r["match"]["path"]
        for r in rules
        if r["requires"] == OPTIONAL_TOKEN and r["match"].get("path") in DOC_PAGES
    }
    assert open_pages == DOC_PAGES
    first_catch_all = next(i for i, r in enumerate(rules) if r["match"] == {"prefix": "/"})
    assert all(
        i < first_catch_all for i, r in enumerate(rules) if r["match"].get("path") in DOC_PAGES
    )


def test_every_page_fits_in_a_direct_response(settings, services):
    limit = http_filters(settings, services)["route_config"]["max_direct_response_body_size_bytes"]
    for path, route in page_routes(settings, services).items():
        body = route["direct_response"]["body"]
        size = (
            Path(body["filename"]).stat().st_size
            if "filename" in body
            else len(body["inline_string"].encode())
        )
        assert size <= limit, f"{path}: {size} bytes; Envoy would refuse the listener"


def test_the_reference_page_loads_only_what_the_gateway_serves(settings, services):
    pages = page_routes(settings, services)
    html = pages["/docs"]["direct_response"]["body"]["inline_string"]
    loaded = {url for url in re.findall(r'(?:src|href)="([^"]+)"', html) if url != "data:,"}
    assert loaded and loaded <= set(pages), "no CDN: every script and stylesheet is ours"
    init = pages["/docs/init.js"]["direct_response"]["body"]["inline_string"]
    assert '"/openapi.json"' in init and "validatorUrl: null" in init
    policy = headers_of(pages["/docs"])["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "http" not in policy, "nothing from another origin"


def test_the_web_app_is_served_from_its_build_with_a_policy_for_this_origin_only(
    settings, services
):
    pages = {
        r["match"]["path"]: r
        for r in routes_of(settings, services)
        if "direct_response" in r and r["match"].get("path") in WEB_APP_PAGES
    }
    assert set(pages) == WEB_APP_PAGES
    for path, name in (("/", "index.html"), ("/app.js", "app.js"), ("/app.css", "app.css")):
        body = pages[path]["direct_response"]["body"]
        assert body == {"filename": str(settings.web_dir / name)}
    policy = headers_of(pages["/"])["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "unsafe" not in policy and "http" not in policy


def test_rendering_in_place_needs_swagger_ui(tmp_path):
    pod = replace(
        GatewaySettings.load(Env({})),
        config_dir=tmp_path / "envoy",
        eds_dir=tmp_path / "envoy" / "eds",
        docs_dir=tmp_path / "no-swagger-ui",
    )
    with pytest.raises(FileNotFoundError, match="make tools"):
        render(pod)
    assert not (tmp_path / "envoy" / "lds.json").exists()
    render(pod, out_dir=tmp_path / "out")  # for a pod, whose own files Envoy reads
    lds = json.loads((tmp_path / "out" / "lds.json").read_text())
    assert str(tmp_path / "no-swagger-ui" / "swagger-ui-bundle.js") in json.dumps(lds)


def test_retries_follow_idempotency(settings, services):
    routes = routes_of(settings, services)
    retry_on = {
        r["match"].get("path"): r["route"]["retry_policy"]["retry_on"]
        for r in routes
        if "path" in r["match"] and "route" in r
    }
    assert "unavailable" in retry_on["/zentry.user.v1.UserService/GetUser"]
    assert "unavailable" in retry_on["/zentry.user.v1.UserService/FollowUser"]
    assert "unavailable" not in retry_on["/zentry.user.v1.UserService/CreateUser"]
    assert "connect-failure" in retry_on["/zentry.user.v1.UserService/CreateUser"]


def test_a_stream_is_never_cut_by_the_route_timeout_and_is_sent_as_events(settings, services):
    routes = {r["match"].get("path"): r.get("route") for r in routes_of(settings, services)}
    watch = routes["/zentry.feed.v1.FeedService/WatchFeed"]
    assert watch["timeout"] == "0s"
    assert "unavailable" not in watch["retry_policy"]["retry_on"], "only if it never got in"
    assert "per_try_timeout" not in watch["retry_policy"]
    assert watch["idle_timeout"] == "60s", "longer than the services' 15 s heartbeats"
    manager = http_filters(settings, services)
    by_name = {f["name"].rsplit(".", 1)[1]: f["typed_config"] for f in manager["http_filters"]}
    assert by_name["grpc_json_transcoder"]["print_options"]["stream_sse_style_delimited"]


def test_limits_come_from_settings(settings, services):
    small = replace(settings, max_request_bytes=4096, rate_limit_per_second=7)
    manager = http_filters(small, services)
    by_name = {f["name"].rsplit(".", 1)[1]: f["typed_config"] for f in manager["http_filters"]}
    assert by_name["buffer"]["max_request_bytes"] == 4096
    assert by_name["local_ratelimit"]["token_bucket"]["tokens_per_fill"] == 7
    statuses = {
        m["filter"]["status_code_filter"]["comparison"]["value"]["default_value"]
        for m in manager["local_reply_config"]["mappers"]
        if "status_code_filter" in m["filter"]
    }
    assert {400, 401, 403, 404, 429, 503} <= statuses


def test_log_ins_sign_ups_and_intake_have_a_bucket_per_client_address(settings, services):
    """Found by reading: one bucket for the whole gateway let one client 429 everyone."""
    limits = {**settings.client_limits, "zentry.user.v1.UserService.CreateSession": 6}
    manager = http_filters(replace(settings, client_limits=limits), services)
    config = next(f for f in manager["http_filters"] if f["name"].endswith("local_ratelimit"))[
        "typed_config"
    ]
    by_method = {d["entries"][0]["value"]: d for d in config["descriptors"]}
    assert set(by_method) == {"CreateSession", "CreateUser", "TrackEvents"}
    assert by_method["CreateSession"]["entries"][1] == {"key": "masked_remote_address"}  # any
    assert by_method["CreateSession"]["token_bucket"] == {
        "max_tokens": 2,  # a quarter of the minute's at once
        "tokens_per_fill": 1,
        "fill_interval": "10.000s",
    }
    assert config["always_consume_default_token_bucket"] and config["token_bucket"]
    assert config["max_dynamic_descriptors"] >= 10000
    by_value = {
        r["actions"][0]["header_value_match"]["descriptor_value"]: r for r in config["rate_limits"]
    }
    sessions = by_value["CreateSession"]
    path = sessions["actions"][0]["header_value_match"]["headers"][1]["string_match"]
    regex = path["safe_regex"]["regex"]
    for hit in ("/v1/sessions", "/v1/sessions?x=1", "/zentry.user.v1.UserService/CreateSession"):
        assert re.fullmatch(regex, hit), hit
    for miss in ("/v1/sessionsX", "/v1/users", "/zentry.user.v1.UserServiceXCreateSession"):
        assert not re.fullmatch(regex, miss), miss
    assert sessions["actions"][1] == {"masked_remote_address": {"v6_prefix_mask_len": 64}}


def test_every_forwarded_request_carries_the_gateway_secret_from_its_file(settings, services):
    manager = http_filters(settings, services)
    injector = next(
        f for f in manager["http_filters"] if f["name"].endswith("credential_injector")
    )["typed_config"]
    assert injector["overwrite"] is True  # a client's own header of that name is replaced
    generic = injector["credential"]["typed_config"]
    assert generic["header"] == "x-zentry-gateway-secret"
    sds = generic["credential"]["sds_config"]["path_config_source"]["path"]
    assert sds == str(settings.config_dir / envoy_config.SECRET_SDS_FILE)
    secret = envoy_config.secret_discovery(settings)["resources"][0]
    assert secret["generic_secret"]["secret"] == {"filename": str(settings.secret_file)}


def test_admin_is_on_loopback_and_upstreams_speak_http2(settings, services):
    boot = envoy_config.bootstrap(settings)
    assert boot["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    clusters = envoy_config.clusters(settings, services)["resources"]
    user = next(c for c in clusters if c["name"] == "user")
    assert user["type"] == "EDS"
    options = user["typed_extension_protocol_options"]
    assert "http2_protocol_options" in next(iter(options.values()))["explicit_http_config"]
    assert user["ignore_health_on_host_removal"] is True


def test_upstreams_are_plaintext_unless_the_gateway_has_a_certificate(settings, services):
    clusters = envoy_config.clusters(settings, services)["resources"]
    assert not any("transport_socket" in c for c in clusters)
    assert envoy_config.upstream_tls_secrets(settings) == {}


def test_with_a_certificate_every_upstream_is_mutual_tls_checking_the_services_name(
    services, tmp_path
):
    env = {
        "ZENTRY_GATEWAY_TLS_CERT_FILE": "/etc/zentry/tls/tls.crt",
        "ZENTRY_GATEWAY_TLS_KEY_FILE": "/etc/zentry/tls/tls.key",
        "ZENTRY_GATEWAY_TLS_CA_FILE": "/etc/zentry/tls/ca.crt",
        "ZENTRY_GATEWAY_CONFIG_DIR": "/etc/zentry/envoy",
    }
    pod = GatewaySettings.load(Env(env))  # paths of the pod: they need not exist here
    clusters = envoy_config.clusters(pod, services)["resources"]
    upstreams = {s.upstream for s in services}
    for cluster in (c for c in clusters if c["name"] in upstreams):
        socket = cluster["transport_socket"]
        assert socket["name"] == "envoy.transport_sockets.tls"
        context = socket["typed_config"]
        assert context["@type"].endswith("extensions.transport_sockets.tls.v3.UpstreamTlsContext")
        assert context["sni"] == cluster["name"]
        common = context["common_tls_context"]
        assert common["alpn_protocols"] == ["h2"]
        (certificate,) = common["tls_certificate_sds_secret_configs"]
        assert certificate["name"] == envoy_config.UPSTREAM_CERTIFICATE
        validation = common["combined_validation_context"]
        assert validation["default_validation_context"]["match_typed_subject_alt_names"] == [
            {"san_type": "DNS", "matcher": {"exact": cluster["name"]}}
        ], "a certificate of the CA for another service's name is refused"
        ca = validation["validation_context_sds_secret_config"]
        assert ca["name"] == envoy_config.UPSTREAM_CA
        for secret in (certificate, ca):
            path = Path(secret["sds_config"]["path_config_source"]["path"])
            assert (
                path
                == Path("/etc/zentry/envoy") / envoy_config.UPSTREAM_TLS_SDS_FILES[secret["name"]]
            )
    others = [c for c in clusters if c["name"] not in upstreams]
    assert others and not any("transport_socket" in c for c in others), "only the services"

    render(pod, out_dir=tmp_path)
    written = {p.name: json.loads(p.read_text()) for p in tmp_path.iterdir()}
    (cert,) = written["gateway-tls-certificate.json"]["resources"]
    assert cert["name"] == envoy_config.UPSTREAM_CERTIFICATE
    assert cert["tls_certificate"] == {
        "certificate_chain": {"filename": "/etc/zentry/tls/tls.crt"},
        "private_key": {"filename": "/etc/zentry/tls/tls.key"},
        "watched_directory": {"path": "/etc/zentry/tls"},  # cert-manager renews in place
    }
    (ca,) = written["gateway-tls-ca.json"]["resources"]
    assert ca["validation_context"]["trusted_ca"] == {"filename": "/etc/zentry/tls/ca.crt"}


@pytest.mark.parametrize(
    "given", [("CERT",), ("CERT", "KEY"), ("KEY", "CA"), ("CA",)], ids="+".join
)
def test_the_gateway_needs_all_three_tls_files_or_none(given):
    env = {f"ZENTRY_GATEWAY_TLS_{part}_FILE": f"/x/{part}" for part in given}
    with pytest.raises(ConfigError) as error:
        GatewaySettings.load(Env(env))
    missing = {"CERT", "KEY", "CA"} - set(given)
    assert all(f"ZENTRY_GATEWAY_TLS_{part}_FILE" in str(error.value) for part in missing)


def test_render_elsewhere_names_the_in_place_paths_and_seeding_keeps_endpoints(tmp_path):
    pod = replace(
        GatewaySettings.load(Env({})),
        config_dir=Path("/etc/zentry/envoy"),
        eds_dir=tmp_path / "eds",
    )
    upstreams = render(pod, out_dir=tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "bootstrap.json",
        "cds.json",
        "gateway-secret.json",
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


def manager_of(listener: dict) -> dict:
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def test_envoy_traces_to_the_local_zipkin_by_default_and_can_be_turned_off(services):
    traced = GatewaySettings.load(Env({"ZENTRY_GATEWAY_TRACE_SAMPLING": "2.5"}))
    assert traced.trace_collector == "127.0.0.1:9411"
    (listener,) = envoy_config.listeners(traced, services)["resources"]
    tracing = manager_of(listener)["tracing"]
    assert tracing["random_sampling"] == {"value": 2.5}
    zipkin = tracing["provider"]["typed_config"]
    assert zipkin["collector_cluster"] == envoy_config.TRACE_CLUSTER
    assert zipkin["trace_context_option"] == "USE_B3_WITH_W3C_PROPAGATION"  # what services read
    assert zipkin["trace_id_128bit"]
    clusters = {c["name"]: c for c in envoy_config.clusters(traced, services)["resources"]}
    assert envoy_config.TRACE_CLUSTER in clusters

    off = GatewaySettings.load(Env({"ZENTRY_GATEWAY_TRACE_COLLECTOR": "off"}))
    (listener,) = envoy_config.listeners(off, services)["resources"]
    assert "tracing" not in manager_of(listener)
    names = {c["name"] for c in envoy_config.clusters(off, services)["resources"]}
    assert envoy_config.TRACE_CLUSTER not in names


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ZENTRY_GATEWAY_TRACE_COLLECTOR", "zipkin"),
        ("ZENTRY_GATEWAY_TRACE_COLLECTOR", "zipkin:99999"),
        ("ZENTRY_GATEWAY_TRACE_SAMPLING", "101"),
        ("ZENTRY_GATEWAY_TRACE_SAMPLING", "often"),
    ],
)
def test_a_wrong_tracing_setting_is_named(name, value):
    with pytest.raises(ConfigError, match=name):
        GatewaySettings.load(Env({name: value}))


def test_a_clients_trace_context_is_dropped_before_envoy_reads_it(settings, services):
    (listener,) = envoy_config.listeners(settings, services)["resources"]
    manager = manager_of(listener)
    (early,) = manager["early_header_mutation_extensions"]
    removed = {m["remove"] for m in early["typed_config"]["mutations"]}
    assert {"traceparent", "tracestate", "x-b3-sampled", "b3", "x-client-trace-id"} <= removed
    assert manager["always_set_request_id_in_response"]


def test_the_metrics_listener_serves_envoys_prometheus_page_and_nothing_else(services):
    settings = GatewaySettings.load(Env({"ZENTRY_GATEWAY_METRICS_PORT": "9465"}))
    listeners = {r["name"]: r for r in envoy_config.listeners(settings, services)["resources"]}
    routes = manager_of(listeners["metrics"])["route_config"]["virtual_hosts"][0]["routes"]
    forwarded = [r for r in routes if "route" in r]
    assert [r["match"]["path"] for r in forwarded] == ["/stats/prometheus"]
    assert forwarded[0]["route"]["cluster"] == envoy_config.ADMIN_CLUSTER
    assert all(r["direct_response"]["status"] == 404 for r in routes if "route" not in r)
    (admin,) = [
        c
        for c in envoy_config.clusters(settings, services)["resources"]
        if c["name"] == envoy_config.ADMIN_CLUSTER
    ]
    endpoint = admin["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"]["port_value"] == settings.admin_port
    assert "metrics" not in {
        r["name"]
        for r in envoy_config.listeners(GatewaySettings.load(Env({})), services)["resources"]
    }
