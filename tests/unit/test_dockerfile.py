"""The container image definition, linted by tests: no container engine here can build it."""

from __future__ import annotations

import re
import shlex

from infra import config

REPO = config.REPO_DIR


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def args() -> dict[str, str]:
    return dict(
        rest.split("=", 1) for word, rest in instructions() if word == "ARG" and "=" in rest
    )


def final_stage() -> list[tuple[str, str]]:
    pairs = instructions()
    last_from = max(i for i, (word, _) in enumerate(pairs) if word == "FROM")
    return pairs[last_from:]


def exec_form(rest: str) -> list[str]:
    return [part.strip().strip('"') for part in rest.strip("[]").split(",")]


def test_base_images_are_pinned():
    for word, rest in instructions():
        if word == "FROM":
            image = rest.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: args()[m.group(1)], image)
            tag = image.partition(":")[2]
            slim = r"\d+\.\d+\.\d+-(slim-\w+|\w+-slim)"  # python's and node's spellings
            assert re.fullmatch(slim, tag), f"{image}: pin an exact version"


def test_the_image_runs_as_a_numeric_non_root_user():
    users = [rest for word, rest in final_stage() if word == "USER"]
    assert users, "the final stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric, so Kubernetes can check runAsNonRoot"


def test_healthcheck_asks_the_grpc_health_service():
    (check,) = [rest for word, rest in final_stage() if word == "HEALTHCHECK"]
    command = exec_form(check.split("CMD", 1)[1].strip())
    assert command == ["python", "-m", "services.kit.healthcheck"]
    assert (REPO / "services" / "kit" / "healthcheck.py").is_file()


def test_the_default_command_is_a_service_and_the_port_matches_kubernetes():
    (cmd,) = [rest for word, rest in final_stage() if word == "CMD"]
    command = exec_form(cmd)
    assert command[:2] == ["python", "-m"]
    assert (REPO / command[2].replace(".", "/") / "__main__.py").is_file()
    env = " ".join(rest for word, rest in final_stage() if word == "ENV")
    port = re.search(r"ZENTRY_PORT=(\d+)", env).group(1)
    assert f"ZENTRY_PORT={port}" in (REPO / "k8s" / "base" / "config.env").read_text()


def test_everything_copied_from_the_context_exists_and_is_not_ignored():
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for word, rest in instructions():
        if word == "COPY" and "--from" not in rest:
            *sources, _target = shlex.split(rest)
            for source in sources:
                assert (REPO / source).exists(), source
                assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"


def test_the_python_stages_copy_no_development_tooling():
    """Only docs-ui reads infra/ (Swagger UI's pin); the image's code never imports it."""
    stage = ""
    for word, rest in instructions():
        if word == "FROM":
            stage = rest.split()[-1]
        elif word == "COPY" and "--from" not in rest and stage != "docs-ui":
            *sources, _target = shlex.split(rest)
            for source in sources:
                assert source.split("/")[0] not in {"infra", "bench", "chaos", "tests"}, source
