"""Resilience.run with fake versions: the fallback chain, its reasons, deadlines, breakers,
and a Redis that is down."""

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures.servers import free_port
from prometheus_client import generate_latest

from inferd.api.grpc import grpc_status
from inferd.config import parse_model_config
from inferd.errors import (
    InferdError,
    InferenceFailed,
    InvalidInput,
    ModelNotFound,
    RequestTimeout,
)
from inferd.resilience.breaker import CircuitOpen
from inferd.resilience.layer import Resilience
from inferd.serving.manager import ModelVersion
from inferd.types import InferenceRequest, InferenceResponse, Signature, TensorSpec

SIGNATURE = Signature((TensorSpec("x", "FP32", (-1,)),), (TensorSpec("y", "FP32", (-1,)),))


def version(label: int, **config: Any) -> ModelVersion:
    cfg = parse_model_config({"platform": "python", **config}, "test", "m")
    return ModelVersion("m", label, cfg, Path("/none"), digest=f"d{label}", signature=SIGNATURE)


class Fleet:
    """Fake versions: each label maps to an error to raise, or None to answer 10*label + x."""

    def __init__(self, versions: dict[str, ModelVersion], broken: dict[str, InferdError]) -> None:
        self.versions = versions
        self.broken = broken
        self.calls: list[str] = []

    async def run(self, v: ModelVersion, request: InferenceRequest, start: float) -> Any:
        self.calls.append(v.label)
        if v.label in self.broken:
            raise self.broken[v.label]
        y = request.inputs["x"] + 10 * v.version
        return InferenceResponse(v.name, v.label, {"y": y}, id=request.id)

    async def resolve(self, name: str, label: str | None) -> ModelVersion:
        if label not in self.versions:
            raise ModelNotFound(name, label, known=[name])
        return self.versions[label]


def req(x: list[float], timeout_ms: float | None = None) -> InferenceRequest:
    return InferenceRequest("m", None, {"x": np.array(x, np.float32)}, timeout_ms=timeout_ms)


CHAIN = {"fallback": {"versions": [2, 1], "default": {"y": -1}}}


async def test_each_hop_is_tried_in_order_and_marked() -> None:
    layer = Resilience()
    broken = {"3": InferenceFailed("m", "3", "boom"), "2": InferenceFailed("m", "2", "boom")}
    fleet = Fleet({"2": version(2, **CHAIN), "1": version(1, **CHAIN)}, broken)
    response = await layer.run(version(3, **CHAIN), req([1]), time.perf_counter(), fleet.run,
                               fleet.resolve)  # fmt: skip
    assert fleet.calls == ["3", "2", "1"]
    assert response.model_version == "1"
    np.testing.assert_array_equal(response.outputs["y"], [11])
    assert response.parameters == {"served_from": "fallback", "fallback_reason": "error"}
    text = _metrics(layer)
    assert 'inferd_fallback_total{model="m",reason="error"} 2.0' in text


async def test_default_answer_has_a_row_per_input_row() -> None:
    layer = Resilience()
    broken: dict[str, InferdError] = {v: InferenceFailed("m", v, "boom") for v in "123"}
    fleet = Fleet({"2": version(2, **CHAIN), "1": version(1, **CHAIN)}, broken)
    response = await layer.run(version(3, **CHAIN), req([1, 2, 3]), time.perf_counter(),
                               fleet.run, fleet.resolve)  # fmt: skip
    np.testing.assert_array_equal(response.outputs["y"], [-1, -1, -1])
    assert response.outputs["y"].dtype == np.float32
    assert response.parameters["served_from"] == "fallback"
    assert response.parameters["fallback_default"] is True


async def test_no_default_answers_the_first_error() -> None:
    layer = Resilience()
    chain = {"fallback": {"versions": [9]}}  # 9 is not registered
    first = InferenceFailed("m", "3", "first")
    fleet = Fleet({}, {"3": first})
    with pytest.raises(InferenceFailed) as caught:
        await layer.run(version(3, **chain), req([1]), time.perf_counter(), fleet.run,
                        fleet.resolve)  # fmt: skip
    assert caught.value is first


async def test_a_bad_request_does_not_fall_back() -> None:
    layer = Resilience()
    fleet = Fleet({}, {"3": InvalidInput("x", "FP32", "INT8")})
    with pytest.raises(InvalidInput):
        await layer.run(version(3, **CHAIN), req([1]), time.perf_counter(), fleet.run,
                        fleet.resolve)  # fmt: skip
    assert fleet.calls == ["3"]


async def test_with_too_little_time_left_only_the_default_is_tried() -> None:
    layer = Resilience()
    fleet = Fleet({"2": version(2, **CHAIN)}, {"3": InferenceFailed("m", "3", "boom")})
    started = time.perf_counter() - 1.0  # the request has spent 1 s of its 1.002 s already
    response = await layer.run(version(3, **CHAIN), req([5], timeout_ms=1002), started,
                               fleet.run, fleet.resolve)  # fmt: skip
    assert fleet.calls == ["3"]
    assert response.parameters["fallback_reason"] == "deadline"
    np.testing.assert_array_equal(response.outputs["y"], [-1])


async def test_the_hop_gets_the_remaining_time() -> None:
    layer = Resilience()
    seen: list[float | None] = []
    fleet = Fleet({"2": version(2, **CHAIN)}, {"3": InferenceFailed("m", "3", "boom")})
    run = fleet.run

    async def spy(v: ModelVersion, request: InferenceRequest, start: float) -> Any:
        seen.append(request.timeout_ms)
        return await run(v, request, start)

    started = time.perf_counter() - 0.5
    await layer.run(version(3, **CHAIN), req([5], timeout_ms=2000), started, spy, fleet.resolve)
    assert seen[0] == 2000
    assert seen[1] is not None
    assert 1000 < seen[1] < 1500


async def test_an_open_circuit_sends_requests_down_the_chain_without_calling() -> None:
    config = {**CHAIN, "circuit_breaker": {"min_requests": 2, "open_s": 60}}
    layer = Resilience()
    primary = version(3, **config)
    fleet = Fleet({"2": version(2, **config)}, {"3": InferenceFailed("m", "3", "boom")})
    for _ in range(2):
        await layer.run(primary, req([1]), time.perf_counter(), fleet.run, fleet.resolve)
    assert fleet.calls == ["3", "2", "3", "2"]
    response = await layer.run(primary, req([1]), time.perf_counter(), fleet.run, fleet.resolve)
    assert fleet.calls[4:] == ["2"]  # the primary was not called
    assert response.parameters["fallback_reason"] == "circuit_open"
    assert 'inferd_circuit_state{model="m",version="3"} 1.0' in _metrics(layer)


async def test_an_open_circuit_without_fallback_answers_503_with_retry_after() -> None:
    layer = Resilience()
    primary = version(3, circuit_breaker={"min_requests": 1, "open_s": 30})
    fleet = Fleet({}, {"3": InferenceFailed("m", "3", "boom")})
    with pytest.raises(InferenceFailed):
        await layer.run(primary, req([1]), time.perf_counter(), fleet.run, fleet.resolve)
    with pytest.raises(InferdError) as caught:
        await layer.run(primary, req([1]), time.perf_counter(), fleet.run, fleet.resolve)
    assert caught.value.http_status == 503
    assert "circuit open" in str(caught.value)
    assert caught.value.headers()["retry-after"] == "30"


async def test_cache_hit_is_marked_and_skips_the_version() -> None:
    layer = Resilience()
    primary = version(1, cache={"enabled": True})
    fleet = Fleet({}, {})
    first = await layer.run(primary, req([1]), time.perf_counter(), fleet.run, fleet.resolve)
    second = await layer.run(primary, req([1]), time.perf_counter(), fleet.run, fleet.resolve)
    assert fleet.calls == ["1"]
    assert "served_from" not in first.parameters
    assert second.parameters == {"served_from": "cache"}
    np.testing.assert_array_equal(second.outputs["y"], [11])
    text = _metrics(layer)
    assert 'inferd_cache_hits_total{model="m",tier="local",version="1"} 1.0' in text
    assert 'inferd_cache_misses_total{model="m",version="1"} 1.0' in text
    assert 'inferd_cache_bytes{model="m"} 132.0' in text


async def test_redis_down_never_fails_a_request() -> None:
    layer = Resilience(redis_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    primary = version(1, cache={"enabled": True})
    fleet = Fleet({}, {})
    first = await layer.run(primary, req([1]), time.perf_counter(), fleet.run, fleet.resolve)
    second = await layer.run(primary, req([1]), time.perf_counter(), fleet.run, fleet.resolve)
    np.testing.assert_array_equal(first.outputs["y"], [11])
    assert second.parameters == {"served_from": "cache"}  # the local tier still works
    await layer.close()
    assert 'inferd_cache_redis_errors_total{operation="get"} 1.0' in _metrics(layer)


def _metrics(layer: Resilience) -> str:
    return generate_latest(layer.metrics.registry).decode()


async def test_cached_answers_do_not_keep_their_batch_alive() -> None:
    layer = Resilience()
    primary = version(1, cache={"enabled": True})
    batch = np.zeros(100_000, np.float32)  # a batch's output; each request gets a view of it

    async def run(v: ModelVersion, request: InferenceRequest, start: float) -> Any:
        return InferenceResponse(v.name, v.label, {"y": batch[:1]})

    await layer.run(primary, req([1]), time.perf_counter(), run, Fleet({}, {}).resolve)
    hit = await layer.run(primary, req([1]), time.perf_counter(), run, Fleet({}, {}).resolve)
    assert hit.parameters == {"served_from": "cache"}
    assert hit.outputs["y"].base is None  # a copy of the row, not a view of the batch
    assert 'inferd_cache_bytes{model="m"} 132.0' in _metrics(layer)


async def test_a_coalesced_waiter_keeps_its_own_deadline() -> None:
    layer = Resilience()
    primary = version(1, cache={"enabled": True})
    gate = asyncio.Event()
    fleet = Fleet({}, {})

    async def slow(v: ModelVersion, request: InferenceRequest, start: float) -> Any:
        await gate.wait()
        return await fleet.run(v, request, start)

    leader = asyncio.ensure_future(
        layer.run(primary, req([1]), time.perf_counter(), slow, fleet.resolve)
    )
    await asyncio.sleep(0)
    with pytest.raises(RequestTimeout, match="identical request in flight"):
        await layer.run(primary, req([1], timeout_ms=20), time.perf_counter(), slow,
                        fleet.resolve)  # fmt: skip
    gate.set()
    assert (await leader).outputs["y"][0] == 11  # the shared inference went on
    assert fleet.calls == ["1"]


def test_an_open_circuit_tells_grpc_clients_when_to_retry() -> None:
    err = CircuitOpen("m", "1", 30.0)
    _, _, trailers = grpc_status(err)
    assert trailers == (("retry-after", "30"),)
