"""The issue's acceptance checks, end to end through the HTTP app (in-process, httpx).

One repository holds y = 2x + 1 in every format that can hold it exactly, a classifier per
tree/sklearn framework, and three broken models; the broken ones fail alone.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fixtures.models import ARTIFACTS, LINEAR_PLATFORMS, LINEAR_YAML

from inferd.api.app import build_app
from inferd.settings import Settings

CLASSIFIERS = {"sklearn": "FP64", "xgboost": "FP32", "lightgbm": "FP64"}
BROKEN = ("broken_torchscript", "pickled_sklearn", "mismatch_tensorflow")


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy(source, target)


@pytest.fixture
def every_format_repo(
    tmp_path: Path,
    linear_model: Callable[[str], Path],
    classifier: Callable[[str], tuple[Path, Any]],
) -> Path:
    root = tmp_path / "repo"
    for platform in LINEAR_PLATFORMS:
        folder = root / f"linear_{platform}"
        _copy(linear_model(platform), folder / "1" / ARTIFACTS[platform])
        (folder / "model.yaml").write_text(LINEAR_YAML.format(platform=platform))
    for platform in CLASSIFIERS:
        path, _ = classifier(platform)
        _copy(path, root / f"classifier_{platform}" / "1" / path.name)
        (root / f"classifier_{platform}" / "model.yaml").write_text(
            f"platform: {platform}\nmax_batch_size: 64\n"
        )
    broken = root / "broken_torchscript" / "1" / "model.pt"
    _copy(linear_model("torchscript"), broken)
    broken.write_bytes(broken.read_bytes()[:200])
    (broken.parent.parent / "model.yaml").write_text(LINEAR_YAML.format(platform="torchscript"))
    pickled = root / "pickled_sklearn" / "1" / "model.joblib"
    pickled.parent.mkdir(parents=True)
    pickled.write_bytes(b"not even looked at")
    (pickled.parent.parent / "model.yaml").write_text("platform: sklearn\n")
    _copy(linear_model("tensorflow"), root / "mismatch_tensorflow" / "1" / "model.savedmodel")
    (root / "mismatch_tensorflow" / "model.yaml").write_text(
        LINEAR_YAML.format(platform="tensorflow").replace(
            "{name: x, datatype: FP32", "{name: x, datatype: FP64"
        )
    )
    return root


@pytest.fixture
async def served(
    every_format_repo: Path, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    app = build_app(Settings(home=tmp_path, model_repository=every_format_repo))
    problems = await app.dataplane.start()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client, problems
    await app.dataplane.stop()


@pytest.mark.parametrize("protocol", ["v2", "predict"])
async def test_every_format_answers_3_5_7(
    served: tuple[httpx.AsyncClient, dict[str, str]], protocol: str
) -> None:
    client, _ = served
    answers = {}
    for platform in LINEAR_PLATFORMS:
        name = f"linear_{platform}"
        if protocol == "v2":
            body = {"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]}
            response = await client.post(f"/v2/models/{name}/infer", json=body)
            assert response.status_code == 200, (platform, response.text)
            answers[platform] = response.json()["outputs"]
        else:
            body = {"model_name": name, "input_data": {"x": [1, 2, 3]}}
            response = await client.post("/predict", json=body)
            assert response.status_code == 200, (platform, response.text)
            answers[platform] = response.json()["predictions"]
    expected: Any = {"y": [3, 5, 7]}
    if protocol == "v2":
        expected = [{"name": "y", "datatype": "FP32", "shape": [3], "data": [3, 5, 7]}]
    assert answers == dict.fromkeys(LINEAR_PLATFORMS, expected)


async def test_metadata_shows_device_and_memory(
    served: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, _ = served
    for platform in LINEAR_PLATFORMS:
        name = f"linear_{platform}"
        meta = (await client.get(f"/v2/models/{name}")).json()
        assert meta["platform"] == platform
        assert meta["parameters"]["device"] == "cpu"
        assert meta["parameters"]["memory_bytes"] > 0, name
    metrics = (await client.get("/metrics")).text
    assert 'inferd_model_memory_bytes{model="linear_torch_export",version="1"}' in metrics


@pytest.mark.parametrize("platform", list(CLASSIFIERS))
async def test_classifiers_match_the_framework_on_1000_rows(
    served: tuple[httpx.AsyncClient, dict[str, str]],
    classifier: Callable[[str], tuple[Path, Any]],
    classes_data: tuple[np.ndarray, np.ndarray],
    platform: str,
) -> None:
    client, _ = served
    _, model = classifier(platform)
    datatype = CLASSIFIERS[platform]
    x = classes_data[0].astype(np.float32 if datatype == "FP32" else np.float64)
    body = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": datatype,
                        "data": x.ravel().tolist()}]}  # fmt: skip
    response = await client.post(f"/v2/models/classifier_{platform}/infer", json=body)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    labels = np.array(outputs["predict"]["data"])
    probabilities = np.array(outputs["predict_proba"]["data"]).reshape(
        outputs["predict_proba"]["shape"]
    )
    np.testing.assert_array_equal(labels, model.predict(x))
    np.testing.assert_allclose(probabilities, model.predict_proba(x), rtol=1e-6, atol=1e-7)


async def test_broken_models_fail_alone_with_the_file_and_problem(
    served: tuple[httpx.AsyncClient, dict[str, str]], every_format_repo: Path
) -> None:
    client, problems = served
    assert sorted(problems) == sorted(f"{name}/1" for name in BROKEN)
    expected = {
        "broken_torchscript": ["model.pt", "not a loadable TorchScript file"],
        "pickled_sklearn": ["model.joblib", "trust_pickle: true"],
        "mismatch_tensorflow": ["model.savedmodel", "input 'x' datatype", "FP64 in model.yaml"],
    }
    for name, fragments in expected.items():
        for fragment in [str(every_format_repo / name / "1"), *fragments]:
            assert fragment in problems[f"{name}/1"]
        body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
        response = await client.post(f"/v2/models/{name}/infer", json=body)
        assert response.status_code == 503
    index = (await client.post("/v2/repository/index")).json()
    states = {entry["name"]: entry["state"] for entry in index}
    assert {states[name] for name in BROKEN} == {"UNAVAILABLE"}
    assert states["linear_tensorflow"] == "READY"
    assert (await client.get("/v2/health/ready")).status_code == 200
