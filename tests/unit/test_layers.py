"""What may import what: deployable code (services/, gateway/) never imports dev tooling."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import services.kit
from services.kit import roster

REPO = Path(__file__).resolve().parents[2]
#: Development tooling, which the container image does not carry.
TOOLING = {"infra", "bench", "chaos", "tests"}


def imported_modules(path: Path) -> list[str]:
    """Every absolute module `path` imports (`import a.b`, `from a.b import c`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return found


@pytest.mark.parametrize("package", ["services", "gateway"])
def test_deployable_code_imports_no_dev_tooling(package):
    imports = {path: imported_modules(path) for path in (REPO / package).rglob("*.py")}
    tops = {module.split(".")[0] for modules in imports.values() for module in modules}
    assert "services" in tops, "the walk sees the imports (each package imports the kit)"
    offending = {
        str(path.relative_to(REPO)): module
        for path, modules in imports.items()
        for module in modules
        if module.split(".")[0] in TOOLING
    }
    assert offending == {}, "what deployed code needs belongs in services/kit/"


def test_both_import_forms_are_seen(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import infra.config\nfrom bench.scratch import scratch\nfrom . import x\n")
    assert imported_modules(module) == ["infra.config", "bench.scratch"]


def test_the_roster_is_the_services_in_the_tree():
    services = REPO / "services"
    assert set(roster.SERVICES) == {p.parent.name for p in services.glob("*/__main__.py")}
    apps = {s: (services / s / "app.py").read_text() for s in roster.SERVICES}
    assert set(roster.CONSUMING) == {s for s, app in apps.items() if "consumers=" in app}
    replays = {s for s in roster.SERVICES if (services / s / "replay.py").is_file()}
    assert set(roster.REPLAYING) == replays


def test_the_kit_names_every_module_it_holds():
    listed = {line.split()[0] for line in services.kit.__doc__.splitlines() if line[:4] == " " * 4}
    held = {p.stem for p in (REPO / "services" / "kit").glob("*.py")} - {"__init__"}
    assert listed == held, "services/kit/__init__.py lists one line per module"
