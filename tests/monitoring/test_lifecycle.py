"""Load, unload, swap and version-state metrics, and in-flight requests, through the app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from inferd.api.app import build_app
from inferd.monitoring.metrics import Metrics
from inferd.settings import Settings

Values = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Values:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }  # fmt: skip


def value(values: Values, name: str, **labels: str) -> float | None:
    return values.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
async def client(repo: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(Settings(home=tmp_path, model_repository=repo))
    assert await app.dataplane.start() == {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c
    await app.dataplane.stop()


async def scrape(client: httpx.AsyncClient) -> Values:
    return parse((await client.get("/metrics")).text)


async def test_loads_states_unloads_and_swaps(client: httpx.AsyncClient) -> None:
    values = await scrape(client)
    for version in ("1", "2"):
        assert value(values, "inferd_model_loads_total", model="linear", version=version,
                     result="success") == 1.0  # fmt: skip
        assert value(values, "inferd_model_version_state", model="linear", version=version,
                     state="READY") == 1.0  # fmt: skip
        assert value(values, "inferd_model_version_state", model="linear", version=version,
                     state="LOADING") == 0.0  # fmt: skip
    assert value(values, "inferd_model_load_duration_seconds_count", model="mlp") == 1.0
    # v1 loaded first and answered version-less requests until v2 (the highest) was ready.
    assert value(values, "inferd_model_swaps_total", model="linear") == 1.0
    assert value(values, "inferd_model_swaps_total", model="mlp") is None

    r = await client.post("/v1/models/linear/versions/1/promote")  # back to v1: a swap
    assert r.status_code == 200, r.text
    values = await scrape(client)
    assert value(values, "inferd_model_swaps_total", model="linear") == 2.0

    assert (await client.post("/v2/repository/models/mlp/unload")).status_code == 200
    values = await scrape(client)
    assert value(values, "inferd_model_unloads_total", model="mlp", version="1",
                 reason="requested") == 1.0  # fmt: skip
    assert value(values, "inferd_model_unload_duration_seconds_count", model="mlp") == 1.0
    states = [value(values, "inferd_model_version_state", model="mlp", version="1", state=s)
              for s in ("LOADING", "READY", "UNLOADING", "UNAVAILABLE")]  # fmt: skip
    assert states == [0.0, 0.0, 0.0, 0.0]  # dropped: in no state

    assert (await client.post("/v2/repository/models/mlp/load")).status_code == 200
    values = await scrape(client)
    assert value(values, "inferd_model_loads_total", model="mlp", version="1",
                 result="success") == 2.0  # fmt: skip
    assert value(values, "inferd_model_version_state", model="mlp", version="1",
                 state="READY") == 1.0  # fmt: skip


async def test_in_flight_returns_to_zero_after_requests(client: httpx.AsyncClient) -> None:
    body = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}
    answers = await asyncio.gather(
        *(client.post("/v2/models/linear/versions/1/infer", json=body) for _ in range(20))
    )
    assert {a.status_code for a in answers} == {200}
    values = await scrape(client)
    assert value(values, "inferd_requests_in_flight", model="linear", version="1") == 0.0


def test_in_flight_counts_started_minus_ended() -> None:
    metrics = Metrics(CollectorRegistry())

    async def run() -> Values:
        for _ in range(3):
            metrics.request_started("m", "1")
        metrics.request_ended("m", "1")
        await asyncio.sleep(0)  # the flush
        return parse(metrics.render().decode())

    values = asyncio.run(run())
    assert value(values, "inferd_requests_in_flight", model="m", version="1") == 2.0
