import asyncio
import threading

import numpy as np
import pytest
from fixtures.runtimes import AffineRuntime, WrongRowsRuntime

from inferd.batching import Batcher, BatchPolicy
from inferd.errors import (
    ConfigError,
    InferenceFailed,
    InvalidInput,
    QueueFull,
    RequestTimeout,
    ServerShuttingDown,
)


def x(*values: float) -> dict[str, np.ndarray]:
    return {"x": np.array(values, dtype=np.float32)}


def make(runtime: AffineRuntime, **policy: object) -> Batcher:
    return Batcher(runtime, BatchPolicy(**policy), model="m", version="1")  # type: ignore[arg-type]


async def wait_started(runtime: AffineRuntime) -> None:
    await asyncio.to_thread(runtime.started.wait, 5)


async def test_lone_request_runs_alone_without_waiting() -> None:
    runtime = AffineRuntime()
    batcher = make(runtime, max_batch_size=8)
    outputs, info = await batcher.submit(x(1, 2, 3))
    np.testing.assert_array_equal(outputs["y"], [3, 5, 7])
    assert (info.batch_size, info.rows, info.position_in_batch) == (1, 3, 0)
    assert runtime.batches == [3]
    await batcher.close()


async def test_requests_arriving_while_busy_form_one_batch() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(gate=gate)
    batcher = make(runtime, max_batch_size=16)
    first = asyncio.ensure_future(batcher.submit(x(0)))
    await wait_started(runtime)
    rest = [asyncio.ensure_future(batcher.submit(x(i, i))) for i in range(1, 6)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(first, *rest)
    assert runtime.batches == [1, 10]
    for i, (outputs, info) in enumerate(results[1:], start=1):
        np.testing.assert_array_equal(outputs["y"], [2 * i + 1, 2 * i + 1])
        assert (info.batch_size, info.rows, info.position_in_batch) == (5, 10, i - 1)
    await batcher.close()


async def test_size_trigger_dispatches_before_the_delay() -> None:
    runtime = AffineRuntime()
    batcher = make(runtime, max_batch_size=4, max_queue_delay_s=30.0)
    results = await asyncio.wait_for(
        asyncio.gather(*(batcher.submit(x(i)) for i in range(4))), timeout=5
    )
    assert runtime.batches == [4]
    assert [r[1].position_in_batch for r in results] == [0, 1, 2, 3]
    await batcher.close()


async def test_deadline_trigger_dispatches_a_partial_batch() -> None:
    runtime = AffineRuntime()
    batcher = make(runtime, max_batch_size=64, max_queue_delay_s=0.05)
    results = await asyncio.gather(*(batcher.submit(x(i)) for i in range(3)))
    assert runtime.batches == [3]
    assert all(r[1].wait_time_ms >= 40 for r in results)
    await batcher.close()


async def test_preferred_batch_size_cuts_the_batch() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(gate=gate)
    batcher = make(runtime, max_batch_size=8, preferred_batch_sizes=(4,))
    first = asyncio.ensure_future(batcher.submit(x(0)))
    await wait_started(runtime)
    rest = [asyncio.ensure_future(batcher.submit(x(i))) for i in range(6)]
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(first, *rest)
    assert runtime.batches == [1, 4, 2]
    await batcher.close()


async def test_oversized_request_runs_alone_and_batch_limit_holds() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(gate=gate)
    batcher = make(runtime, max_batch_size=4)
    first = asyncio.ensure_future(batcher.submit(x(0)))
    await wait_started(runtime)
    big = asyncio.ensure_future(batcher.submit(x(*range(10))))
    small = [asyncio.ensure_future(batcher.submit(x(1, 1))) for _ in range(3)]
    await asyncio.sleep(0.01)
    gate.set()
    outputs, _ = await big
    np.testing.assert_array_equal(outputs["y"], np.arange(10) * 2 + 1)
    await asyncio.gather(first, *small)
    assert runtime.batches == [1, 10, 4, 2]
    await batcher.close()


async def test_exception_fails_exactly_the_request_that_raises_alone() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(poison=-1.0, gate=gate)
    batcher = make(runtime, max_batch_size=4)
    first = asyncio.ensure_future(batcher.submit(x(0)))
    await wait_started(runtime)
    poisoned = [asyncio.ensure_future(batcher.submit(x(v))) for v in (1, -1, 2, 3)]
    healthy = [asyncio.ensure_future(batcher.submit(x(v))) for v in (4, 5)]
    await asyncio.sleep(0.01)
    gate.set()
    await first
    results = await asyncio.gather(*poisoned, *healthy, return_exceptions=True)
    # The poisoned batch ran once whole, then each of its requests alone.
    assert runtime.batches == [1, 4, 1, 1, 1, 1, 2]
    assert isinstance(results[1], InferenceFailed)
    assert "poisoned batch" in str(results[1])
    for value, result in zip((1, 2, 3, 4, 5), results[:1] + results[2:], strict=True):
        assert not isinstance(result, BaseException), result
        np.testing.assert_array_equal(result[0]["y"], [2 * value + 1])
    await batcher.close()


async def test_wrong_output_rows_fail_the_batch_with_a_reason() -> None:
    batcher = make(WrongRowsRuntime(), max_batch_size=8)
    results = await asyncio.gather(
        batcher.submit(x(1)), batcher.submit(x(2)), return_exceptions=True
    )
    assert all(isinstance(r, InferenceFailed) for r in results)
    assert "output 'y'" in str(results[0])
    await batcher.close()


async def test_full_queue_is_refused_with_retry_after() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(gate=gate)
    batcher = make(runtime, max_batch_size=1, max_queue_size=2)
    running = asyncio.ensure_future(batcher.submit(x(0)))
    await wait_started(runtime)
    queued = [asyncio.ensure_future(batcher.submit(x(i))) for i in (1, 2)]
    await asyncio.sleep(0)
    with pytest.raises(QueueFull) as caught:
        await batcher.submit(x(3))
    assert caught.value.http_status == 503
    assert caught.value.headers() == {"retry-after": "1"}
    gate.set()
    await asyncio.gather(running, *queued)
    await batcher.close()


async def test_queue_timeout_fails_only_the_waiting_request() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(gate=gate)
    batcher = make(runtime, max_batch_size=1, queue_timeout_s=0.05)
    running = asyncio.ensure_future(batcher.submit(x(0)))
    await wait_started(runtime)
    with pytest.raises(RequestTimeout, match="in the queue") as caught:
        await batcher.submit(x(1))
    assert caught.value.http_status == 504
    gate.set()
    outputs, _ = await running  # dispatched before its queue limit ran out: it completes
    np.testing.assert_array_equal(outputs["y"], [1])
    assert runtime.batches == [1]  # the timed-out request never ran
    await batcher.close()


async def test_request_timeout_covers_inference_too() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(gate=gate)
    batcher = make(runtime, max_batch_size=4)
    with pytest.raises(RequestTimeout, match="during inference"):
        await batcher.submit(x(1), timeout_s=0.05)
    gate.set()
    outputs, _ = await batcher.submit(x(2), timeout_s=5)
    np.testing.assert_array_equal(outputs["y"], [5])
    await batcher.close()


async def test_priority_orders_the_queue() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(gate=gate)
    batcher = make(runtime, max_batch_size=1)
    first = asyncio.ensure_future(batcher.submit(x(0)))
    await wait_started(runtime)
    low = asyncio.ensure_future(batcher.submit(x(10), priority=9))
    default = asyncio.ensure_future(batcher.submit(x(20)))
    high = asyncio.ensure_future(batcher.submit(x(30), priority=1))
    await asyncio.sleep(0.01)
    order: list[float] = []
    original = runtime.infer

    def record(inputs):  # type: ignore[no-untyped-def]
        order.append(float(inputs["x"][0]))
        return original(inputs)

    runtime.infer = record  # type: ignore[method-assign]
    gate.set()
    await asyncio.gather(first, low, default, high)
    assert order == [30.0, 20.0, 10.0]
    await batcher.close()


async def test_incompatible_shapes_are_not_mixed() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(gate=gate)
    batcher = make(runtime, max_batch_size=16)
    first = asyncio.ensure_future(batcher.submit(x(0)))
    await wait_started(runtime)
    wide = {"x": np.ones((2, 3), dtype=np.float32)}
    narrow = {"x": np.ones((2, 2), dtype=np.float32)}
    futures = [asyncio.ensure_future(batcher.submit(a)) for a in (wide, narrow, wide, narrow)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(first, *futures)
    assert runtime.batches == [1, 4, 4]
    assert [r[0]["y"].shape for r in results[1:]] == [(2, 3), (2, 2), (2, 3), (2, 2)]
    await batcher.close()


async def test_inputs_with_different_batch_sizes_are_refused() -> None:
    batcher = make(AffineRuntime(), max_batch_size=8)
    bad = {"x": np.ones(2, dtype=np.float32), "z": np.ones(3, dtype=np.float32)}
    with pytest.raises(InvalidInput, match=r"input 'z'.shape\[0\]"):
        await batcher.submit(bad)
    await batcher.close()


async def test_ten_thousand_concurrent_requests_each_get_their_own_rows() -> None:
    runtime = AffineRuntime()
    batcher = make(runtime, max_batch_size=64, max_queue_size=20_000, instances=2)
    rng = np.random.default_rng(7)
    requests = [
        rng.integers(0, 1_000_000, size=int(rng.integers(1, 4))).astype(np.float32)
        for _ in range(10_000)
    ]
    results = await asyncio.gather(*(batcher.submit({"x": r}) for r in requests))
    for sent, (outputs, _) in zip(requests, results, strict=True):
        np.testing.assert_array_equal(outputs["y"], sent * 2 + 1)
    assert sum(runtime.batches) == sum(len(r) for r in requests)
    assert max(runtime.batches) <= 64
    assert len(runtime.batches) < 10_000  # requests really were batched
    await batcher.close()


async def test_close_drains_queued_requests_then_refuses_new_ones() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(gate=gate)
    batcher = make(runtime, max_batch_size=1)
    futures = [asyncio.ensure_future(batcher.submit(x(i))) for i in range(3)]
    await wait_started(runtime)
    closing = asyncio.ensure_future(batcher.close())
    await asyncio.sleep(0.01)
    with pytest.raises(ServerShuttingDown):
        await batcher.submit(x(9))
    gate.set()
    await closing
    assert [float(f.result()[0]["y"][0]) for f in futures] == [1.0, 3.0, 5.0]


async def test_cancelled_caller_does_not_disturb_others() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(gate=gate)
    batcher = make(runtime, max_batch_size=4)
    first = asyncio.ensure_future(batcher.submit(x(0)))
    await wait_started(runtime)
    gone = asyncio.ensure_future(batcher.submit(x(1)))
    stays = asyncio.ensure_future(batcher.submit(x(2)))
    await asyncio.sleep(0)
    gone.cancel()
    gate.set()
    outputs, _ = await stays
    np.testing.assert_array_equal(outputs["y"], [5])
    await first
    assert runtime.batches == [1, 1]
    await batcher.close()


def test_policy_rejects_preferred_sizes_above_the_maximum() -> None:
    with pytest.raises(ConfigError, match="preferred_batch_sizes"):
        BatchPolicy(max_batch_size=4, preferred_batch_sizes=(8,))


async def test_cancelled_caller_with_a_timeout_leaves_the_queue() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(gate=gate)
    batcher = make(runtime, max_batch_size=4)
    first = asyncio.ensure_future(batcher.submit(x(0)))
    await wait_started(runtime)
    gone = asyncio.ensure_future(batcher.submit(x(1), timeout_s=30))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    gate.set()
    await first
    outputs, _ = await batcher.submit(x(2))
    np.testing.assert_array_equal(outputs["y"], [5])
    assert runtime.batches == [1, 1]  # the cancelled request never ran
    await batcher.close()


async def test_run_on_each_thread_reaches_every_worker_thread() -> None:
    batcher = make(AffineRuntime(), max_batch_size=4, instances=3)
    seen: list[int] = []
    await batcher.run_on_each_thread(lambda _: seen.append(threading.get_ident()))
    assert len(seen) == 3
    assert len(set(seen)) == 3
    await batcher.close()


async def test_background_requests_wait_behind_every_priority() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(gate=gate)
    batcher = make(runtime, max_batch_size=1)
    first = asyncio.ensure_future(batcher.submit(x(0)))
    await wait_started(runtime)
    shadow = asyncio.ensure_future(batcher.submit(x(40), background=True))
    lowest_named = asyncio.ensure_future(batcher.submit(x(10), priority=2**70))
    default = asyncio.ensure_future(batcher.submit(x(20)))
    await asyncio.sleep(0.01)
    order: list[float] = []
    original = runtime.infer

    def record(inputs):  # type: ignore[no-untyped-def]
        order.append(float(inputs["x"][0]))
        return original(inputs)

    runtime.infer = record  # type: ignore[method-assign]
    gate.set()
    await asyncio.gather(first, shadow, lowest_named, default)
    assert order == [20.0, 10.0, 40.0]
    await batcher.close()


async def test_background_requests_take_at_most_half_the_queue() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(gate=gate)
    batcher = make(runtime, max_batch_size=1, max_queue_size=4)
    first = asyncio.ensure_future(batcher.submit(x(0)))
    await wait_started(runtime)
    waiting = [asyncio.ensure_future(batcher.submit(x(i), background=True)) for i in (1, 2)]
    await asyncio.sleep(0)
    with pytest.raises(QueueFull):
        await batcher.submit(x(3), background=True)
    clients = [asyncio.ensure_future(batcher.submit(x(i))) for i in (4, 5)]
    gate.set()
    results = await asyncio.gather(first, *waiting, *clients)
    assert len(results) == 5
    await batcher.close()


async def test_an_added_instance_runs_a_second_batch_at_once() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(gate=gate)
    batcher = make(runtime, max_batch_size=1, instances=1, max_instances=2)
    first = asyncio.ensure_future(batcher.submit(x(1)))
    await wait_started(runtime)
    second = asyncio.ensure_future(batcher.submit(x(2)))
    await asyncio.sleep(0.01)
    assert (batcher.in_flight, batcher.queued) == (1, 1)
    batcher.add_instance()
    await asyncio.sleep(0.05)
    assert (batcher.instances, batcher.in_flight, batcher.queued) == (2, 2, 0)
    gate.set()
    await asyncio.gather(first, second)
    with pytest.raises(ValueError, match="max_instances 2"):
        batcher.add_instance()
    await batcher.close()


async def test_taking_an_idle_instance_hands_back_a_copy_first() -> None:
    main, copy = AffineRuntime(), AffineRuntime()
    policy = BatchPolicy(max_batch_size=1, instances=2, max_instances=3)
    batcher = Batcher(main, policy, model="m", version="1", copies=[copy])
    assert batcher.copies() == [copy]
    assert batcher.take_idle_instance() is copy
    assert batcher.take_idle_instance() is None  # the last instance stays
    assert (batcher.instances, batcher.copies()) == (1, [])
    outputs, _ = await batcher.submit(x(3))
    np.testing.assert_array_equal(outputs["y"], [7])
    assert main.batches == [1]
    assert copy.batches == []
    await batcher.close()


async def test_copies_serve_concurrent_calls_one_each() -> None:
    gate = threading.Event()
    runtimes = [AffineRuntime(gate=gate) for _ in range(3)]
    policy = BatchPolicy(max_batch_size=1, instances=3)
    batcher = Batcher(runtimes[0], policy, model="m", version="1", copies=runtimes[1:])
    calls = [asyncio.ensure_future(batcher.submit(x(i))) for i in range(3)]
    for runtime in runtimes:
        await wait_started(runtime)  # each copy took one of the three calls
    gate.set()
    await asyncio.gather(*calls)
    assert [r.batches for r in runtimes] == [[1], [1], [1]]
    await batcher.close()


async def test_load_sample_sees_the_queue_behind_a_busy_instance() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(gate=gate)
    batcher = make(runtime, max_batch_size=1, max_instances=2)  # adaptive: sampled
    batcher.sample_load()
    calls = [asyncio.ensure_future(batcher.submit(x(i))) for i in range(4)]
    await wait_started(runtime)
    batcher.sample_load()  # the interval starts once one runs and three wait (no start-up)
    await asyncio.sleep(0.05)
    sample = batcher.sample_load()
    assert sample.mean_depth == pytest.approx(3.0)  # three waited the whole interval
    assert (sample.peak_busy, sample.instances) == (1, 1)
    gate.set()
    await asyncio.gather(*calls)
    await batcher.close()


async def test_a_fixed_count_is_not_metered_only_its_present_load_is_read() -> None:
    gate = threading.Event()
    runtime = AffineRuntime(gate=gate)
    batcher = make(runtime, max_batch_size=1, instances=2)
    calls = [asyncio.ensure_future(batcher.submit(x(i))) for i in range(3)]
    await wait_started(runtime)
    await asyncio.sleep(0.01)
    sample = batcher.sample_load()
    assert (sample.seconds, sample.mean_depth, sample.peak_busy, sample.instances) == (0, 1, 2, 2)
    gate.set()
    await asyncio.gather(*calls)
    await batcher.close()
