"""Artifacts that run code (python models, trusted pickles) load only from the code roots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml
from fixtures.models import LINEAR_YAML, build_linear_python

from inferd.api.app import build_app
from inferd.config import parse_model_config
from inferd.errors import PermissionDenied
from inferd.runtimes.trust import check_code_root, parse_roots
from inferd.settings import Settings

PYTHON_CONFIG = yaml.safe_load(LINEAR_YAML.format(platform="python"))
X = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}]}


def test_only_code_running_artifacts_are_checked(tmp_path: Path) -> None:
    python = parse_model_config(PYTHON_CONFIG, "t", "p")
    inside, outside = tmp_path / "repo" / "p" / "1" / "model.py", tmp_path / "elsewhere.py"
    roots = parse_roots(str(tmp_path / "repo"))
    check_code_root(python, inside, roots)
    check_code_root(python, outside, None)  # no roots: no check (library use)
    with pytest.raises(PermissionDenied, match="outside the folders code may load from"):
        check_code_root(python, outside, roots)
    with pytest.raises(PermissionDenied, match="a remote artifact"):
        check_code_root(python, None, roots)
    link = tmp_path / "repo" / "link.py"  # a symlink inside a root to a file outside it
    link.parent.mkdir(parents=True, exist_ok=True)
    outside.write_text("")
    link.symlink_to(outside)
    with pytest.raises(PermissionDenied):
        check_code_root(python, link, roots)
    onnx = parse_model_config({"platform": "onnx"}, "t", "o")
    check_code_root(onnx, outside, roots)  # data, not code
    pickled = parse_model_config({"platform": "sklearn", "trust_pickle": True}, "t", "s")
    with pytest.raises(PermissionDenied, match="trust_pickle"):
        check_code_root(pickled, outside, roots)


@pytest.fixture
async def client(repo: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(Settings(home=tmp_path / "home", model_repository=repo))
    assert await app.dataplane.start() == {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c
    await app.dataplane.stop()


async def test_python_model_from_elsewhere_is_refused(
    client: httpx.AsyncClient, repo: Path, tmp_path: Path
) -> None:
    outside = build_linear_python(tmp_path / "upload" / "model.py")
    body = {"artifact_uri": str(outside), "config": PYTHON_CONFIG}
    r = await client.post("/v1/models/custom/versions", json=body)
    assert r.status_code == 403, r.text
    assert "INFERD_CODE_ROOTS" in r.json()["error"]
    inside = build_linear_python(repo / "custom_src" / "model.py")
    r = await client.post("/v1/models/custom/versions", json={**body, "artifact_uri": str(inside)})
    assert r.status_code == 201, r.text
    answer = await client.post("/v2/models/custom/infer", json=X)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [3.0, 5.0]
    source = tmp_path / "x.csv"
    source.write_text("x\n1\n")
    job = {"model": "custom", "version": 1, "inputs": [str(source)], "output": str(tmp_path / "o")}
    assert (await client.post("/v1/jobs", json=job)).status_code == 201  # inside: allowed
    # A version an admin wrote into the registry directly, from elsewhere: no job runs it.
    from inferd.registry import Registry
    from inferd.registry.artifacts import digest_path

    registry = Registry(f"sqlite:///{tmp_path / 'home' / 'inferd.db'}")
    digest, size = digest_path(outside)
    registry.register_version("custom", platform="python", artifact_uri=str(outside),
                              digest=digest, size_bytes=size)  # fmt: skip
    registry.close()
    r = await client.post("/v1/jobs", json={**job, "version": 2, "output": str(tmp_path / "p")})
    assert r.status_code == 403, r.text


async def test_code_roots_setting_replaces_the_defaults(repo: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", model_repository=repo,
                        code_roots=str(tmp_path / "approved"))  # fmt: skip
    app = build_app(settings)
    problems = await app.dataplane.start()
    await app.dataplane.stop()
    assert problems == {}  # the examples are ONNX: no code, nothing refused
    assert app.dataplane.manager.code_roots == [(tmp_path / "approved").resolve()]
