"""Generate Python code, Envoy's descriptor set and the OpenAPI document from protos/.

Run by `make protos`. Output goes to the git-ignored gen/: gen/python
(importable thanks to a .pth file this writes into the running interpreter's
site-packages), gen/zentry.descriptor.pb (every file with its imports, plus
google/rpc's status and error details so Envoy can transcode rich errors),
gen/googleapis (the google/api protos, so buf can lint without reaching its
registry) and gen/openapi.json (protos/openapi.py; `--no-openapi` skips it
where the plugin is not installed, as in the container image, which does
not serve it).
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import site
import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

REPO = Path(__file__).resolve().parent.parent
PROTOS = REPO / "protos"
GEN = REPO / "gen"
PYTHON_OUT = GEN / "python"
DESCRIPTOR_SET = GEN / "zentry.descriptor.pb"
GOOGLEAPIS_COPY = GEN / "googleapis"
# Not ours, but needed in the descriptor set (see ../shared/PITFALLS.md).
EXTRA_DESCRIPTORS = ("google/rpc/status.proto", "google/rpc/error_details.proto")


def googleapis_dir() -> Path:
    """Where googleapis-common-protos installed google/api/*.proto."""
    import google.api

    return Path(google.api.__path__[0]).parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="protos/generate.py", description=__doc__)
    parser.add_argument("--no-openapi", action="store_true", help="skip gen/openapi.json")
    args = parser.parse_args(argv)
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    if not sources:
        print(f"protos: no .proto files under {PROTOS}", file=sys.stderr)
        return 1
    shutil.rmtree(PYTHON_OUT, ignore_errors=True)
    PYTHON_OUT.mkdir(parents=True)
    includes = [
        f"-I{PROTOS}",
        f"-I{googleapis_dir()}",
        f"-I{Path(grpc_tools.__file__).parent / '_proto'}",
    ]
    code = protoc.main(
        [
            "protoc",
            *includes,
            f"--python_out={PYTHON_OUT}",
            f"--pyi_out={PYTHON_OUT}",
            f"--grpc_python_out={PYTHON_OUT}",
            *sources,
        ]
    )
    if code == 0:
        code = protoc.main(
            [
                "protoc",
                *includes,
                "--include_imports",
                "--include_source_info",
                f"--descriptor_set_out={DESCRIPTOR_SET}",
                *sources,
                *EXTRA_DESCRIPTORS,
            ]
        )
    if code != 0:
        print("protos: protoc failed; the lines above name the file and line", file=sys.stderr)
        return code
    _copy_googleapis()
    _make_importable()
    written = [PYTHON_OUT, DESCRIPTOR_SET]
    if not args.no_openapi:
        import openapi  # protos/openapi.py; needs PyYAML and the plugin, which the image lacks

        try:
            written.append(openapi.write(includes, sources, DESCRIPTOR_SET))
        except (FileNotFoundError, RuntimeError, ValueError) as error:
            print(f"protos: {error}", file=sys.stderr)
            return 1
    print(f"protos: {len(sources)} files -> {', '.join(str(p.relative_to(REPO)) for p in written)}")
    return 0


def _copy_googleapis() -> None:
    shutil.rmtree(GOOGLEAPIS_COPY, ignore_errors=True)
    source = googleapis_dir() / "google" / "api"
    target = GOOGLEAPIS_COPY / "google" / "api"
    target.mkdir(parents=True)
    for proto in source.glob("*.proto"):
        shutil.copy(proto, target / proto.name)


def _make_importable() -> None:
    """Put gen/python on sys.path for this venv, so `import zentry.user.v1` just works.

    This process too: the OpenAPI step reads the descriptors with them.
    """
    pth = Path(site.getsitepackages()[0]) / "zentry-generated.pth"
    pth.write_text(f"{PYTHON_OUT}\n")
    if str(PYTHON_OUT) not in sys.path:
        sys.path.append(str(PYTHON_OUT))
    importlib.invalidate_caches()


if __name__ == "__main__":
    sys.exit(main())
