"""Fault: a model artifact on disk is corrupt (a truncated model.onnx) while load runs.

A new version whose file is truncated fails to load with an error naming the file, the
registry records it as failed with that reason, and the version already serving goes on
with no failed request. Truncating the serving version's own file and asking for a reload is
refused the same way (its digest no longer matches), and the loaded copy keeps serving.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
from fixtures.load import Load, http_infer
from fixtures.models import xy_yaml
from fixtures.servers import Server

THREADS = 4
MODEL_YAML = xy_yaml("onnx", 64)


def _truncated_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True)
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])


def _version(client: httpx.Client, number: int) -> dict[str, object]:
    versions = client.get("/v1/models/tiny/versions").json()
    return next((v for v in versions if v["version"] == number), {})


def _wait(what: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not what():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _loads(client: httpx.Client, version: str, result: str) -> float:
    prefix = f'inferd_model_loads_total{{model="tiny",result="{result}",version="{version}"}} '
    lines = [ln for ln in client.get("/metrics").text.splitlines() if ln.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0


def test_a_corrupt_artifact_fails_its_load_and_the_serving_version_goes_on(
    repo: Path, tmp_path: Path
) -> None:
    good = repo / "tiny" / "1" / "model.onnx"
    good.parent.mkdir(parents=True)
    shutil.copy(repo / "linear" / "1" / "model.onnx", good)
    (repo / "tiny" / "model.yaml").write_text(MODEL_YAML)
    with Server(repo, tmp_path) as server, httpx.Client(base_url=server.url) as client:
        load = Load(
            lambda: http_infer(server.url, "tiny", lambda n: [float(n)]), THREADS, pause_s=0.005
        )
        load.start().wait_for(lambda t: t.ok >= 50)
        # 1. A new version with a truncated file: the watcher registers it, its load fails.
        _truncated_copy(good, repo / "tiny" / "2" / "model.onnx")
        _wait(lambda: _version(client, 2).get("status") == "failed")
        new = _version(client, 2)
        served = load.tally.ok
        load.wait_for(lambda t: t.ok >= served + 100 or t.ok < t.sent)
        # 2. The serving version's own file truncated, then an explicit reload.
        good.write_bytes(good.read_bytes()[:100])
        reload = client.post("/v2/repository/models/tiny/load")
        served = load.tally.ok
        load.wait_for(lambda t: t.ok >= served + 100 or t.ok < t.sent)
        tally = load.stop()
        answer = client.post("/v2/models/tiny/infer", json={"inputs": [
            {"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]})  # fmt: skip
        failures = _loads(client, "2", "failure")
        log = server.output()
    assert tally.ok == tally.sent, tally.summary()
    assert "model.onnx" in str(new["status_reason"]), new
    assert failures >= 1
    assert "tiny version 2" in log, log
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-model-version"] == "1"
    assert reload.status_code == 500, reload.text
    assert "model 'tiny' version 1 failed to load" in reload.text, reload.text
    assert "digest mismatch" in reload.text, reload.text
    assert "the copy loaded before keeps serving" in reload.text, reload.text
