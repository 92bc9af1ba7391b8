"""`inferd models ...` against the registry directly and against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.servers import Server

from inferd.cli.main import main
from inferd.cli.models import parse_metadata
from inferd.errors import InvalidInput
from inferd.serving.examples import build_linear_onnx


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    assert main(["models", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_parse_metadata() -> None:
    parsed = parse_metadata(["accuracy=0.91", "tags=a,b", "description=x y", "training.data=d1"])
    assert parsed == {
        "metrics": {"accuracy": 0.91}, "tags": ["a", "b"], "description": "x y",
        "training": {"data": "d1"},
    }  # fmt: skip
    with pytest.raises(InvalidInput, match="--metadata owner"):
        parse_metadata(["owner=me"])
    with pytest.raises(InvalidInput, match="KEY=VALUE"):
        parse_metadata(["accuracy"])


def test_direct_registry_workflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERD_HOME", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    artifact = tmp_path / "m.onnx"
    build_linear_onnx(artifact)
    base = ["--registry-url", url]
    v1 = run_cli(capsys, *base, "register", "lin", str(artifact), "--platform", "onnx",
                 "--metadata", "accuracy=0.9")  # fmt: skip
    assert v1["version"] == 1  # type: ignore[index]
    v2 = run_cli(capsys, *base, "register", "lin", str(artifact), "--upload", "--stage", "staging")
    assert v2["artifact_uri"] == str(tmp_path / "artifacts" / "lin" / "0" / "m.onnx")  # type: ignore[index]
    assert run_cli(capsys, *base, "promote", "lin", "1")["stage"] == "production"  # type: ignore[index]
    assert run_cli(capsys, *base, "promote", "lin", "2")["stage"] == "production"  # type: ignore[index]
    assert run_cli(capsys, *base, "rollback", "lin")["version"] == 1  # type: ignore[index]
    shown = run_cli(capsys, *base, "show", "lin")
    assert [v["stage"] for v in shown["versions"]] == ["production", "archived"]  # type: ignore[index]
    listed = run_cli(capsys, *base, "list", "--stage", "production")
    assert [m["name"] for m in listed] == ["lin"]  # type: ignore[union-attr]
    assert main(["models", *base, "delete", "lin", "1"]) == 2
    assert "serves production traffic" in capsys.readouterr().err


def test_human_output_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    assert main(["models", "--registry-url", url, "list"]) == 0
    assert "(no models)" in capsys.readouterr().out
    assert main(["models", "--registry-url", url, "show", "ghost"]) == 2
    assert "model 'ghost' not found" in capsys.readouterr().err
    assert main(["models", "--url", "http://127.0.0.1:9", "list"]) == 2
    assert "cannot reach the server" in capsys.readouterr().err


@pytest.fixture
def server(repo: Path, tmp_path: Path) -> Iterator[Server]:
    with Server(repo, tmp_path) as srv:
        yield srv


@pytest.mark.slow
def test_cli_against_a_running_server(server: Server, tmp_path: Path) -> None:
    artifact = tmp_path / "v9.onnx"
    build_linear_onnx(artifact, a=9.0, b=0.0)
    env = {**os.environ, "INFERD_HOME": str(tmp_path)}

    def cli(*args: str, ok: bool = True) -> object:
        done = subprocess.run(
            [sys.executable, "-m", "inferd.cli.main", "models", "--url", server.url, "--json",
             *args], capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        if not ok:
            assert done.returncode == 2
            return done.stderr
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    record = cli("register", "linear", str(artifact), "--version", "9")
    assert record["version"] == 9  # type: ignore[index]
    cli("promote", "linear", "9")
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
    r = httpx.post(f"{server.url}/v2/models/linear/infer", json=body)
    assert (r.json()["outputs"][0]["data"], r.headers["x-model-version"]) == ([9.0], "9")
    refused = cli("rollback", "linear", ok=False)
    assert "409: model 'linear': no earlier production version" in str(refused)
