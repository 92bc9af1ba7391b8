"""Readiness on queue depth (readiness_max_queue_depth) behind the real data plane and HTTP
app, in-process: not ready while requests wait above the threshold, ready again once they are
answered; liveness never follows it; off by default."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fixtures.models import write_python_model, xy_yaml

from inferd.api.app import build_app
from inferd.errors import ConfigError
from inferd.serving.load import QueueGate, queued_requests
from inferd.serving.manager import ModelManager
from inferd.settings import Settings

# Every call takes 100 ms and serves one request: requests sent together wait in the queue.
SLOW_PY = """\
import time

from inferd.runtimes.python import PythonModel


class Slow(PythonModel):
    def infer(self, inputs):
        time.sleep(0.1)
        return {"y": inputs["x"] * 2 + 1}
"""
YAML = xy_yaml("python", 1)
BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
WAIT_S = 10


async def _client(tmp_path: Path, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    repo = tmp_path / "repo"
    write_python_model(repo, "slow", SLOW_PY, YAML)
    app = build_app(Settings(home=tmp_path, model_repository=repo, **settings))  # type: ignore[arg-type]
    assert await app.dataplane.start() == {}
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c
    finally:
        await app.dataplane.stop()


@pytest.fixture
async def gated(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(tmp_path, readiness_max_queue_depth=2):
        yield c


@pytest.fixture
async def ungated(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(tmp_path):
        yield c


async def _status(client: httpx.AsyncClient, path: str) -> int:
    return (await client.get(path)).status_code


async def _until(client: httpx.AsyncClient, code: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while await _status(client, "/v2/health/ready") != code:
        assert time.monotonic() < deadline, f"readiness never answered {code}"
        await asyncio.sleep(0.005)


async def test_not_ready_while_the_queue_is_above_the_threshold(
    gated: httpx.AsyncClient,
) -> None:
    assert await _status(gated, "/v2/health/ready") == 200
    sent = asyncio.gather(*(gated.post("/v2/models/slow/infer", json=BODY) for _ in range(6)))
    await _until(gated, 503)  # 5 waiting behind the one running
    body = (await gated.get("/v2/health/ready")).json()
    assert body == {"ready": False}
    assert await _status(gated, "/v2/health/live") == 200  # liveness never follows the queue
    answers = await sent
    assert [r.status_code for r in answers] == [200] * 6  # nothing refused meanwhile
    await _until(gated, 200)


async def test_off_by_default(ungated: httpx.AsyncClient) -> None:
    sent = asyncio.gather(*(ungated.post("/v2/models/slow/infer", json=BODY) for _ in range(6)))
    seen = set()
    while not sent.done():
        seen.add(await _status(ungated, "/v2/health/ready"))
        await asyncio.sleep(0.005)
    await sent
    assert seen == {200}


def test_an_empty_manager_has_no_queue_and_a_negative_threshold_is_named() -> None:
    from inferd.monitoring import Metrics

    manager = ModelManager(Metrics())
    assert queued_requests(manager) == 0
    assert QueueGate(manager, 0).open()
    with pytest.raises(ConfigError, match=r"readiness_max_queue_depth.*got -1"):
        QueueGate(manager, -1)
