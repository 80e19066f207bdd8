"""The API document and its browsable reference: pages Envoy answers itself, with no token.

GET /openapi.json is the document `make protos` writes (gen/openapi.json),
inlined into the listener like the descriptor set, so it changes with the
protos and a ConfigMap carries it. GET /docs is Swagger UI (pinned from npm in
infra/toolchain/swagger-ui): a small page and initializer inlined here, its
script and stylesheet read by Envoy from `settings.docs_dir` (in a pod, an
init container copies them there from the image). Nothing comes from a CDN,
and the page's Content-Security-Policy lets it reach only this origin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from gateway.config import GatewaySettings

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
#: Swagger UI's files Envoy reads from `docs_dir`, by the path each is served at.
UI_FILES = {
    "/docs/swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "/docs/swagger-ui.css": ("swagger-ui.css", "text/css; charset=utf-8"),
}
#: The largest page body Envoy is allowed to hold (Swagger UI's script is about 1.7 MB).
#: Envoy keeps every direct response body in memory, once per listener config.
MAX_BODY_BYTES = 4 * 1024 * 1024
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

INDEX_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Zentry API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""

# validatorUrl: null, or Swagger UI asks validator.swagger.io about the document.
INIT_JS = f"""window.ui = SwaggerUIBundle({{
  url: {json.dumps(OPENAPI_PATH)},
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
}});
"""


@dataclass(frozen=True)
class Page:
    path: str
    content_type: str
    body: dict  # an Envoy DataSource: inline_string or filename
    headers: dict[str, str] = field(default_factory=dict)


def pages(settings: GatewaySettings) -> list[Page]:
    """Everything served under /openapi.json and /docs.

    Raises FileNotFoundError when the document has not been generated (`make protos`).
    """
    if not settings.openapi_document.is_file():
        raise FileNotFoundError(
            f"{settings.openapi_document} is missing; run `make protos` to generate it"
        )
    document = json.dumps(json.loads(settings.openapi_document.read_text()), separators=(",", ":"))
    found = [
        Page(OPENAPI_PATH, "application/json", {"inline_string": document}),
        Page(
            DOCS_PATH,
            "text/html; charset=utf-8",
            {"inline_string": INDEX_HTML},
            {"content-security-policy": CONTENT_SECURITY_POLICY},
        ),
        Page("/docs/init.js", "text/javascript; charset=utf-8", {"inline_string": INIT_JS}),
    ]
    for path, (name, content_type) in UI_FILES.items():
        found.append(Page(path, content_type, {"filename": str(settings.docs_dir / name)}))
    return found


def missing_ui_files(settings: GatewaySettings) -> list[str]:
    """Swagger UI's files that are not in `docs_dir` (Envoy would refuse the listener)."""
    return [name for name, _ in UI_FILES.values() if not (settings.docs_dir / name).is_file()]
