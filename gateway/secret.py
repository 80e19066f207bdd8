"""The gateway's secret for local runs (in production a Kubernetes Secret holds it)."""

from __future__ import annotations

import secrets
from pathlib import Path


def ensure_secret(path: Path) -> Path:
    """A random secret in `path` (made once, readable by its owner only); returns the path."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))  # no newline: it goes into a header
    return path
