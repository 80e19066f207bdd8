"""Builds the web app (web/): its npm packages at web/package-lock.json's pins, then one
bundle with esbuild, into `.tools/share/web/` for the gateway to serve at `/`.

A build is kept per hash of web/'s sources and lock, so `make setup` rebuilds
exactly when the app changed; nothing is fetched from a CDN at run time.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from infra.config import Settings
from infra.errors import InfraError
from infra.processes import run_logged

WEB = Path(__file__).resolve().parent.parent / "web"
#: What the gateway serves, by file name (gateway.webapp reads them from the build).
FILES = ("index.html", "app.js", "app.css")


def build(settings: Settings) -> str:
    """The bundle for web/ as it is now (built unless already there); a line saying so."""
    digest = _digest()
    out = settings.tools_dir / "web" / digest / "dist"
    link = settings.tools_dir / "share" / "web"
    if not all((out / name).is_file() for name in FILES):
        for old in out.parent.parent.glob("*"):  # earlier builds: only one is served
            shutil.rmtree(old, ignore_errors=True)
        _bundle(settings, out)
        done = f"built the web app ({digest})"
    else:
        done = f"web app {digest}"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(out)
    return f"{done} ({link})"


def _digest() -> str:
    hashed = hashlib.sha256()
    for path in _sources():
        hashed.update(path.relative_to(WEB).as_posix().encode() + b"\0" + path.read_bytes())
    return hashed.hexdigest()[:12]


def _sources() -> list[Path]:
    named = [WEB / n for n in ("package.json", "package-lock.json", "tsconfig.json", "build.mjs")]
    return sorted([*named, *(p for p in WEB.glob("src/**/*") if p.is_file())])


def _bundle(settings: Settings, out: Path) -> None:
    """web/ copied into the build's folder, its packages installed there, then build.mjs."""
    if shutil.which("npm") is None:
        raise InfraError("npm (Node.js) is needed to build the web app; install Node.js 18+")
    home = out.parent
    for path in _sources():
        target = home / path.relative_to(WEB)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    log = settings.log_dir / "setup-web.log"
    run_logged(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
        log,
        "npm could not install the web app's packages",
        cwd=home,
    )
    staging = home / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    run_logged(["node", "build.mjs", str(staging)], log, "the web app did not build", cwd=home)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
