"""The web app's pages (web/, built by `make setup` into `web_dir`), answered by Envoy at /.

The app is three files read by Envoy from `settings.web_dir`: the page, one
script and one stylesheet, all from this origin; it calls the same REST API
as any other client. Its Content-Security-Policy lets the page load and
reach only this origin.
"""

from __future__ import annotations

from gateway.config import GatewaySettings
from gateway.docs import Page

APP_PATH = "/"
#: The app's files by the path each is served at: (file name in web_dir, content type).
FILES = {
    APP_PATH: ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def pages(settings: GatewaySettings) -> list[Page]:
    return [
        Page(
            path,
            content_type,
            {"filename": str(settings.web_dir / name)},
            {"content-security-policy": CONTENT_SECURITY_POLICY} if path == APP_PATH else {},
        )
        for path, (name, content_type) in FILES.items()
    ]


def missing_files(settings: GatewaySettings) -> list[str]:
    """The app's files that are not in `web_dir` (Envoy would refuse the listener)."""
    return [name for name, _ in FILES.values() if not (settings.web_dir / name).is_file()]
