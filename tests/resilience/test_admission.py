"""Admission and its gates with fake versions and batcher calls the test finishes by hand:
who enters, who waits in which order, who is shed and how the refusal reads."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from inferd.batching.batcher import BatchResult
from inferd.config import parse_model_config
from inferd.errors import InferdError, InferenceFailed, InvalidInput, RequestTimeout
from inferd.resilience.admission import Admission, Overloaded, traffic_class
from inferd.resilience.breaker import CircuitState
from inferd.resilience.gate import TrafficClass
from inferd.resilience.layer import Resilience
from inferd.serving.manager import ModelVersion
from inferd.traffic.shadow import ShadowMirror
from inferd.traffic.shadow_config import ShadowConfig
from inferd.types import BatchInfo, InferenceRequest, InferenceResponse


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def version(**overload: Any) -> ModelVersion:
    cfg = parse_model_config(
        {"platform": "python", "overload": {"enabled": True, **overload}}, "test", "m"
    )
    return ModelVersion("m", 1, cfg, Path("/none"))


def req(cls: str | None = None, timeout_ms: float | None = None) -> InferenceRequest:
    params = {} if cls is None else {"traffic_class": cls}
    x = np.zeros(1, np.float32)
    return InferenceRequest("m", None, {"x": x}, parameters=params, timeout_ms=timeout_ms)


class Held:
    """Batcher calls that answer when the test finishes them, in the order they started."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self._calls: dict[str, asyncio.Future[BatchResult]] = {}

    def submit(self, name: str) -> Callable[[], Awaitable[BatchResult]]:
        async def call() -> BatchResult:
            self.started.append(name)
            self._calls[name] = asyncio.get_running_loop().create_future()
            return await self._calls[name]

        return call

    def finish(self, name: str, wait_ms: float = 0.0) -> None:
        self._calls[name].set_result(({}, BatchInfo(wait_time_ms=wait_ms)))


async def settle() -> None:
    for _ in range(5):  # let every task run up to its next wait
        await asyncio.sleep(0)


def send(
    admission: Admission, v: ModelVersion, held: Held, name: str, request: InferenceRequest
) -> asyncio.Task[BatchResult]:
    return asyncio.create_task(admission.admit(v, request, time.perf_counter(), held.submit(name)))


def metrics(admission: Admission) -> str:
    return generate_latest(admission.metrics.registry).decode()


async def test_beyond_the_limit_a_request_is_shed_with_503_retry_after_and_why() -> None:
    admission, held = Admission(CollectorRegistry(), clock=Clock()), Held()
    v = version(min_limit=2, max_limit=2, max_wait_ms=0)
    first = [send(admission, v, held, f"i{n}", req()) for n in range(2)]
    await settle()
    with pytest.raises(Overloaded) as caught:
        await admission.admit(v, req(), time.perf_counter(), held.submit("i2"))
    err = caught.value
    assert (err.http_status, err.grpc_code) == (503, "UNAVAILABLE")
    assert err.headers() == {"retry-after": "1"}
    assert err.message.startswith(
        "model 'm' version 1 is overloaded: 2 of 2 requests in flight (adaptive limit), "
        "0 waiting, expected wait 0.0 ms over the 0.0 ms allowed; request shed, retry after 1 s"
    ), err.message
    assert held.started == ["i0", "i1"]
    text = metrics(admission)
    assert 'inferd_overload_shed_total{model="m",traffic_class="interactive"} 1.0' in text
    assert 'inferd_overload_in_flight{model="m",version="1"} 2.0' in text
    assert 'inferd_concurrency_limit{model="m",version="1"} 2.0' in text
    for n, task in enumerate(first):
        held.finish(f"i{n}")
        await task
    assert 'inferd_overload_in_flight{model="m",version="1"} 0.0' in metrics(admission)


async def test_interactive_waiters_are_let_in_before_batch_waiters() -> None:
    admission, held = Admission(CollectorRegistry(), clock=Clock()), Held()
    v = version(min_limit=2, max_limit=2, batch_share=0.5, max_wait_ms=10_000)
    tasks = [send(admission, v, held, "b0", req("batch"))]  # batch may hold 1 of 2
    await settle()
    tasks.append(send(admission, v, held, "b1", req("batch")))  # waits: batch share taken
    await settle()
    tasks.append(send(admission, v, held, "i0", req("interactive")))  # the second slot
    await settle()
    tasks.append(send(admission, v, held, "i1", req()))  # waits, ahead of b1
    await settle()
    assert held.started == ["b0", "i0"]
    held.finish("b0")
    await settle()
    assert held.started == ["b0", "i0", "i1"]  # b1 came first but is batch
    held.finish("i0")
    await settle()
    assert held.started == ["b0", "i0", "i1"]  # i1 holds the one slot batch may use
    held.finish("i1")
    await settle()
    assert held.started == ["b0", "i0", "i1", "b1"]
    held.finish("b1")
    await asyncio.gather(*tasks)


async def test_shadow_copies_never_wait_and_take_only_their_share() -> None:
    admission, held = Admission(CollectorRegistry(), clock=Clock()), Held()
    v = version(min_limit=4, max_limit=4, shadow_share=0.25, max_wait_ms=10_000)
    first = asyncio.create_task(admission.shadow(v, held.submit("s0")))
    await settle()
    shed = r"class shadow may hold 1\), 0 waiting, shadow copies never wait"
    with pytest.raises(Overloaded, match=shed):
        await admission.shadow(v, held.submit("s1"))  # 3 of 4 slots free, but not for shadows
    interactive = send(admission, v, held, "i0", req())
    await settle()
    assert held.started == ["s0", "i0"]
    assert 'traffic_class="shadow"} 1.0' in metrics(admission)
    held.finish("s0")
    held.finish("i0")
    await asyncio.gather(first, interactive)


async def test_an_interactive_arrival_pushes_out_the_newest_batch_waiters() -> None:
    clock = Clock()
    admission, held = Admission(CollectorRegistry(), clock=clock), Held()
    v = version(min_limit=2, max_limit=2, batch_share=0.5, max_wait_ms=12, window_ms=100)
    # One measured window: 10 ms per request at a limit of 2 -> a slot frees every 5 ms.
    warm = [send(admission, v, held, f"w{n}", req()) for n in range(2)]
    await settle()
    clock.now += 0.1
    for n, task in enumerate(warm):
        held.finish(f"w{n}")
        await task
    assert admission.gate(v).limiter.latency_s == pytest.approx(0.1)
    admission.gate(v).limiter.latency_s = 0.010  # what the window would say at 10 ms
    running = [send(admission, v, held, f"i{n}", req()) for n in range(2)]
    await settle()
    b0 = send(admission, v, held, "b0", req("batch"))  # expected wait 5 ms
    b1 = send(admission, v, held, "b1", req("batch"))  # 10 ms
    await settle()
    i2 = send(admission, v, held, "i2", req())  # 5 ms for it; 15 ms for the last batch
    await settle()
    with pytest.raises(Overloaded, match="an interactive request came"):
        await b1
    assert admission.gate(v).waiting == 2
    with pytest.raises(Overloaded, match=r"expected wait 15\.0 ms over the 12\.0 ms allowed"):
        await admission.admit(v, req("batch"), time.perf_counter(), held.submit("b2"))
    for name in ("i0", "i1"):
        held.finish(name)
    await settle()
    assert held.started[-1] == "i2"  # b0 waited longer, but batch may hold only 1 of 2
    held.finish("i2")
    await settle()
    assert held.started[-1] == "b0"
    held.finish("b0")
    await asyncio.gather(*running, b0, i2)
    assert 'traffic_class="batch"} 2.0' in metrics(admission)


async def test_once_the_line_was_full_nobody_waits_for_a_window() -> None:
    clock = Clock()
    admission, held = Admission(CollectorRegistry(), clock=clock), Held()
    v = version(min_limit=1, max_limit=1, max_wait_ms=12, window_ms=100)
    gate = admission.gate(v)
    gate.limiter.latency_s = 0.005  # a slot frees every 5 ms
    first = send(admission, v, held, "i0", req())
    await settle()
    waiters = [send(admission, v, held, f"i{n}", req()) for n in (1, 2)]  # 5 and 10 ms
    await settle()
    with pytest.raises(Overloaded, match="expected wait 15"):  # the line is full
        await admission.admit(v, req(), time.perf_counter(), held.submit("x"))
    held.finish("i0")
    await settle()  # i1 runs; the line holds i2 alone: 5 ms, but the line was just full
    with pytest.raises(Overloaded, match="the line was full moments ago"):
        await admission.admit(v, req(), time.perf_counter(), held.submit("y"))
    clock.now += 0.1  # a window without a full line: bursts may wait again
    late = send(admission, v, held, "i3", req())
    await settle()
    assert gate.waiting == 2
    for name in ("i1", "i2", "i3"):
        held.finish(name)
        await settle()
    await asyncio.gather(first, *waiters, late)
    assert held.started == ["i0", "i1", "i2", "i3"]


async def test_a_waiter_whose_deadline_passes_gets_504_and_leaves_the_line() -> None:
    admission, held = Admission(CollectorRegistry(), clock=Clock()), Held()
    v = version(min_limit=1, max_limit=1, max_wait_ms=10_000)
    first = send(admission, v, held, "i0", req())
    await settle()
    with pytest.raises(RequestTimeout, match="waiting for a slot under the concurrency limit"):
        await admission.admit(v, req(timeout_ms=20), time.perf_counter(), held.submit("i1"))
    gate = admission.gate(v)
    assert (gate.in_flight, gate.waiting) == (1, 0)
    held.finish("i0")
    await first
    assert gate.in_flight == 0


async def test_a_failed_request_gives_its_slot_back() -> None:
    admission = Admission(CollectorRegistry(), clock=Clock())
    v = version(min_limit=1, max_limit=1, max_wait_ms=0)

    async def boom() -> BatchResult:
        raise InferenceFailed("m", "1", "boom")

    for _ in range(3):
        with pytest.raises(InferenceFailed):
            await admission.admit(v, req(), time.perf_counter(), boom)
    assert admission.gate(v).in_flight == 0


def test_the_class_is_read_from_the_parameters_and_checked() -> None:
    assert traffic_class(req()) is TrafficClass.INTERACTIVE
    assert traffic_class(req("batch")) is TrafficClass.BATCH
    with pytest.raises(InvalidInput, match=r"parameters\.traffic_class.*'interactive' or 'batch'"):
        traffic_class(req("shadow"))  # set by the data plane only


def test_off_unless_the_model_or_the_server_turns_it_on() -> None:
    plain = ModelVersion("m", 1, parse_model_config({"platform": "python"}, "t", "m"), None)
    off = ModelVersion("m", 1, parse_model_config(
        {"platform": "python", "overload": {"enabled": False}}, "t", "m"), None)  # fmt: skip
    assert not Admission(CollectorRegistry()).enabled(plain)
    assert Admission(CollectorRegistry(), default=True).enabled(plain)
    assert not Admission(CollectorRegistry(), default=True).enabled(off)
    assert Admission(CollectorRegistry()).enabled(version())


async def test_a_shed_shadow_copy_is_counted_as_dropped_not_failed() -> None:
    async def runner(
        requests: list[InferenceRequest], label: str
    ) -> list[dict[str, np.ndarray] | Exception]:
        return [Overloaded("m", label, "shadow copies never wait", 1) for _ in requests]

    mirror = ShadowMirror()
    mirror.runner = runner
    mirror.apply([ShadowConfig("m", 1, 1.0, 10)])
    answer = InferenceResponse("m", "2", {"y": np.zeros(1, np.float32)})
    mirror.offer(req(), answer)
    await mirror.idle()
    agreement = mirror.agreement("m")[("2", "1")]
    assert (agreement.dropped, agreement.failed, agreement.mirrored) == (1, 0, 0)
    await mirror.close()


async def test_a_circuit_breaker_takes_no_outcome_from_a_shed_request() -> None:
    cfg = parse_model_config(
        {"platform": "python", "circuit_breaker": {"min_requests": 2, "window_s": 60}}, "t", "m"
    )
    v = ModelVersion("m", 1, cfg, None)
    layer = Resilience()

    async def resolve(name: str, label: str | None) -> ModelVersion:
        raise AssertionError("no fallback configured")

    async def run(error: InferdError, *_: object) -> InferenceResponse:
        raise error

    shed = partial(run, Overloaded("m", "1", "full", 1))
    for _ in range(5):
        with pytest.raises(Overloaded):
            await layer.run(v, req(), time.perf_counter(), shed, resolve)
    breaker = layer.breaker(v)
    assert breaker is not None
    assert breaker.state is CircuitState.CLOSED
    failed = partial(run, InferenceFailed("m", "1", "boom"))
    for _ in range(2):  # while real failures still open it
        with pytest.raises(InferenceFailed):
            await layer.run(v, req(), time.perf_counter(), failed, resolve)
    assert breaker.state is CircuitState.OPEN
