"""LRU eviction under a memory budget, pinning, and on-demand loads, with custom Python models
that report a fixed memory size (so the budget arithmetic is exact)."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from inferd.api.app import build_app
from inferd.api.http import HttpApp
from inferd.settings import Settings

MB = 1_000_000
MODEL_PY = '''
from collections.abc import Mapping

import numpy as np

from inferd.runtimes import Runtime


class Scaled(Runtime):
    """y = FACTOR * x, holding (and reporting) 40 MB."""

    def load(self) -> None:
        self.block = np.ones(40_000_000, dtype=np.uint8)

    def signature(self):
        from inferd.types import Signature, TensorSpec
        return Signature((TensorSpec("x", "FP32", (-1,)),), (TensorSpec("y", "FP32", (-1,)),))

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": inputs["x"] * FACTOR}

    def memory_bytes(self) -> int:
        return 40_000_000

    def unload(self) -> None:
        del self.block
'''
CONFIG = """platform: python
inputs: [{name: x, datatype: FP32, shape: [-1]}]
outputs: [{name: y, datatype: FP32, shape: [-1]}]
max_batch_size: 8
"""


def make_repo(root: Path) -> Path:
    for factor, name in ((1, "one"), (2, "two"), (3, "three")):
        (root / name / "1").mkdir(parents=True)
        (root / name / "model.yaml").write_text(CONFIG)
        (root / name / "1" / "model.py").write_text(f"FACTOR = {factor}\n" + MODEL_PY)
    return root


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, HttpApp]]:
    repo = make_repo(tmp_path / "repo")
    settings = Settings(home=tmp_path, model_repository=repo, memory_budget_bytes=90 * MB)
    app = build_app(settings)
    await app.dataplane.start()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c, app
    await app.dataplane.stop()


def loaded(app: HttpApp) -> set[str]:
    manager = app.dataplane.manager
    return {n for n in manager.names() if any(v.state == "READY" for v in manager.versions(n))}


async def ask(client: httpx.AsyncClient, name: str) -> float:
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
    r = await client.post(f"/v2/models/{name}/infer", json=body)
    assert r.status_code == 200, r.text
    return float(r.json()["outputs"][0]["data"][0])


async def test_budget_fits_two_of_three_and_evicts_lru(
    client: tuple[httpx.AsyncClient, HttpApp],
) -> None:
    c, app = client
    assert len(loaded(app)) == 2  # the third did not fit at start: it loads on demand
    assert app.dataplane.manager.loaded_bytes() <= 90 * MB
    assert await ask(c, "one") == 1.0
    assert await ask(c, "two") == 2.0
    assert await ask(c, "three") == 3.0  # on demand: evicts the least recently used ("one")
    assert loaded(app) == {"two", "three"}
    assert await ask(c, "one") == 1.0  # back on demand, evicting "two"
    assert loaded(app) == {"three", "one"}
    assert app.dataplane.manager.loaded_bytes() <= 90 * MB


async def test_pinned_versions_are_never_evicted(
    client: tuple[httpx.AsyncClient, HttpApp],
) -> None:
    c, app = client
    await ask(c, "one")
    r = await c.patch("/v1/models/one/versions/1", json={"pinned": True})
    assert r.status_code == 200, r.text
    for name in ("two", "three", "two", "three"):
        await ask(c, name)
        assert "one" in loaded(app)


async def test_concurrent_requests_wait_for_one_on_demand_load(
    client: tuple[httpx.AsyncClient, HttpApp],
) -> None:
    c, app = client
    (missing,) = {"one", "two", "three"} - loaded(app)
    factor = {"one": 1.0, "two": 2.0, "three": 3.0}[missing]
    answers = await asyncio.gather(*(ask(c, missing) for _ in range(30)))
    assert answers == [factor] * 30
    assert missing in loaded(app)
    assert len(loaded(app)) == 2


GPU_MODEL_PY = '''
from collections.abc import Mapping

import numpy as np

from inferd.runtimes import Runtime
from inferd.runtimes.base import MemoryUsage


class OnGpu(Runtime):
    """Reports 30 MB on cuda:0 (the budget arithmetic needs no real GPU)."""

    def load(self) -> None:
        self.device = "cuda:0"

    def signature(self):
        from inferd.types import Signature, TensorSpec
        return Signature((TensorSpec("x", "FP32", (-1,)),), (TensorSpec("y", "FP32", (-1,)),))

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": inputs["x"]}

    def memory_usage(self) -> MemoryUsage:
        return MemoryUsage(host_bytes=1_000_000, device_bytes=30_000_000)
'''


async def test_device_budget_evicts_on_the_same_device(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for name in ("g1", "g2", "g3"):
        (root / name / "1").mkdir(parents=True)
        (root / name / "model.yaml").write_text(CONFIG)
        (root / name / "1" / "model.py").write_text(GPU_MODEL_PY)
    settings = Settings(home=tmp_path, model_repository=root, device_memory_budget_bytes=70 * MB)
    app = build_app(settings)
    await app.dataplane.start()
    try:
        manager = app.dataplane.manager
        assert len(loaded(app)) == 2
        assert manager.device_bytes("cuda:0") <= 70 * MB
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for name in ("g1", "g2", "g3"):
                assert await ask(c, name) == 1.0
                assert name in loaded(app)
                assert manager.device_bytes("cuda:0") <= 70 * MB
    finally:
        await app.dataplane.stop()
