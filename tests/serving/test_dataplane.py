import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from inferd.api.app import build_app
from inferd.errors import InvalidInput, ModelLoadError, ModelNotFound, ModelNotReady
from inferd.serving.dataplane import DataPlane
from inferd.settings import Settings
from inferd.types import InferenceRequest


def make_plane(repo: Path, home: Path) -> DataPlane:
    return build_app(Settings(home=home, model_repository=repo)).dataplane


@pytest.fixture
async def plane(repo: Path, tmp_path: Path) -> AsyncIterator[DataPlane]:
    dp = make_plane(repo, tmp_path)
    assert await dp.start() == {}
    yield dp
    await dp.stop()


def linear(values: list[float], version: str | None = None) -> InferenceRequest:
    return InferenceRequest("linear", version, {"x": np.array(values, dtype=np.float32)})


async def test_default_version_is_the_highest_ready(plane: DataPlane) -> None:
    response = await plane.infer(linear([1, 2, 3]), "test")
    assert response.model_version == "2"
    np.testing.assert_array_equal(response.outputs["y"], [4, 7, 10])
    response = await plane.infer(linear([1, 2, 3], "1"), "test")
    np.testing.assert_array_equal(response.outputs["y"], [3, 5, 7])


async def test_metadata_ready_and_config(plane: DataPlane) -> None:
    meta = plane.model_metadata("mlp", None)
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 256]}]
    assert meta["parameters"]["device"] == "cpu"
    assert meta["parameters"]["memory_bytes"] > 0
    assert plane.model_ready("linear", "1")
    assert plane.ready()
    config = plane.model_config("mlp", None)
    assert config["max_batch_size"] == 64
    assert config["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": [256]}]
    assert plane.model_config("linear", None)["max_batch_size"] == 0  # only the batch dim


async def test_unknown_model_and_version(plane: DataPlane) -> None:
    with pytest.raises(ModelNotFound, match="known: linear, mlp"):
        await plane.infer(InferenceRequest("nope", None, {}), "test")
    with pytest.raises(ModelNotFound, match="version '7'"):
        await plane.infer(linear([1], "7"), "test")
    with pytest.raises(ModelNotFound):
        plane.model_ready("linear", "x")


async def test_statistics_count_requests_and_batches(plane: DataPlane) -> None:
    await asyncio.gather(*(plane.infer(linear([1.0, 2.0], "1"), "test") for _ in range(20)))
    with pytest.raises(InvalidInput):
        await plane.infer(linear([float("nan")], "1"), "test")
    stats = plane.statistics("linear", "1")["model_stats"][0]
    assert stats["inference_stats"]["success"]["count"] == 20
    assert stats["inference_stats"]["fail"]["count"] == 1
    assert stats["inference_count"] == 40  # rows served; warm-up is not counted
    assert (
        sum(b["compute_infer"]["count"] for b in stats["batch_stats"]) == stats["execution_count"]
    )


async def test_requested_outputs_and_metrics(plane: DataPlane) -> None:
    request = linear([1.0])
    request.outputs = ["y"]
    await plane.infer(request, "http")
    text = plane.metrics.render().decode()
    expected = 'inferd_requests_total{code="200",model="linear",protocol="http",version="2"} 1.0'
    assert expected in text
    assert 'inferd_model_loaded{model="mlp",version="1"} 1.0' in text


async def test_unload_and_reload_through_the_repository_extension(plane: DataPlane) -> None:
    await plane.unload_model("linear")
    assert {"name": "linear", "state": "UNAVAILABLE", "reason": "unloaded"} in (
        plane.repository_index()
    )
    with pytest.raises(ModelNotFound):
        await plane.infer(linear([1]), "test")
    await plane.load_model("linear")
    response = await plane.infer(linear([1]), "test")
    np.testing.assert_array_equal(response.outputs["y"], [4])


async def test_broken_model_fails_alone(repo: Path) -> None:
    (repo / "mlp" / "1" / "model.onnx").write_bytes(b"not an onnx file")
    dp = make_plane(repo, repo.parent)
    problems = await dp.start()
    assert list(problems) == ["mlp/1"]
    assert "model.onnx" in problems["mlp/1"]
    with pytest.raises(ModelNotReady, match="UNAVAILABLE"):
        await dp.infer(InferenceRequest("mlp", "1", {}), "test")
    with pytest.raises(ModelLoadError, match=r"model\.onnx"):
        await dp.load_model("mlp")
    response = await dp.infer(linear([0]), "test")
    np.testing.assert_array_equal(response.outputs["y"], [1])
    index = {(e["name"], e.get("version")): e for e in dp.repository_index()}
    assert index[("mlp", "1")]["state"] == "UNAVAILABLE"
    await dp.stop()


async def test_reload_swaps_without_failing_requests(plane: DataPlane) -> None:
    async def hammer() -> int:
        done = 0
        for _ in range(200):
            response = await plane.infer(linear([1.0], "1"), "test")
            assert response.outputs["y"][0] == 3.0
            done += 1
            await asyncio.sleep(0)
        return done

    clients = [asyncio.ensure_future(hammer()) for _ in range(8)]
    await asyncio.sleep(0.01)
    await plane.load_model("linear")  # reload version 1 and 2 while requests flow
    assert sum(await asyncio.gather(*clients)) == 1600


async def test_model_yaml_naming_another_model_fails_that_model_only(repo: Path) -> None:
    config = repo / "mlp" / "model.yaml"
    config.write_text("name: other\n" + config.read_text())
    dp = make_plane(repo, repo.parent)
    problems = await dp.start()
    assert "must match the folder name 'mlp'" in problems["mlp"]
    response = await dp.infer(linear([0]), "test")
    np.testing.assert_array_equal(response.outputs["y"], [1])
    await dp.stop()
