"""The instance controller on a driven clock: samples are handed in second by second."""

from inferd.batching.scaling import Change, InstanceController, LoadMeter, LoadSample
from inferd.config import InstancesConfig

CONFIG = InstancesConfig(min=1, max=4, grow_queue_depth=2, grow_after_s=3, shrink_after_s=10)


def busy(count: int, depth: float = 5.0) -> LoadSample:
    """One second with a deep queue and every one of ``count`` instances busy."""
    return LoadSample(1.0, depth, float(count), count, count)


def quiet(count: int, mean_busy: float = 0.0) -> LoadSample:
    return LoadSample(1.0, 0.0, mean_busy, min(count, 1), count)


def run(controller: InstanceController, samples: list[LoadSample], start: float = 0.0) -> list:
    """Feed one sample per second; the decisions, with the second each came."""
    out = []
    for second, sample in enumerate(samples, start=1):
        decision = controller.observe(sample, start + second)
        if decision is not None:
            out.append((second, decision.instances, decision.reason))
    return out


def test_sustained_depth_grows_one_step_per_window() -> None:
    controller = InstanceController(CONFIG)
    counts = [1] * 3 + [2] * 3 + [3] * 3
    changes = run(controller, [busy(n) for n in counts])
    assert changes == [
        (3, 2, Change.QUEUE_DEPTH),
        (6, 3, Change.QUEUE_DEPTH),
        (9, 4, Change.QUEUE_DEPTH),
    ]


def test_a_blip_shorter_than_the_window_adds_nothing() -> None:
    controller = InstanceController(CONFIG)
    samples = [quiet(1), busy(1, depth=500), busy(1, depth=40), quiet(1)] * 5
    assert run(controller, samples) == []


def test_a_queue_waiting_for_company_with_instances_free_is_no_pressure() -> None:
    controller = InstanceController(CONFIG)
    waiting = LoadSample(1.0, 8.0, 0.5, 1, 2)  # max_queue_delay_ms holds requests back
    assert run(controller, [waiting] * 20) == []


def test_depth_below_the_threshold_adds_nothing() -> None:
    controller = InstanceController(CONFIG)
    assert run(controller, [busy(1, depth=1.9)] * 20) == []


def test_never_grows_past_max() -> None:
    controller = InstanceController(CONFIG)
    assert run(controller, [busy(4)] * 20) == []


def test_never_grows_past_the_ceiling() -> None:
    controller = InstanceController(CONFIG)
    decisions = [controller.observe(busy(2), float(s), ceiling=2) for s in range(1, 20)]
    assert decisions == [None] * 19


def test_idle_shrinks_one_step_per_window_down_to_min() -> None:
    config = InstancesConfig(min=2, max=4, shrink_after_s=10)
    controller = InstanceController(config)
    counts = [4] * 10 + [3] * 10 + [2] * 30
    changes = run(controller, [quiet(n) for n in counts])
    assert changes == [(10, 3, Change.IDLE), (20, 2, Change.IDLE)]


def test_steady_use_of_the_instances_keeps_them() -> None:
    # 0.8 of one instance busy at two: one alone would be 80% busy, above the 50% rule.
    controller = InstanceController(CONFIG)
    assert run(controller, [quiet(2, mean_busy=0.8)] * 60) == []


def test_pressure_in_the_shrink_window_restarts_it() -> None:
    controller = InstanceController(CONFIG)
    samples = [quiet(2)] * 9 + [busy(2, depth=2)] + [quiet(2)] * 9
    assert run(controller, samples) == []
    assert run(controller, [quiet(2)], start=19.0) == [(1, 1, Change.IDLE)]


def test_meter_averages_over_time() -> None:
    meter = LoadMeter(now=0.0)
    meter.update(0.0, depth=4, busy=1)  # 4 waiting, 1 running for one second
    meter.update(1.0, depth=0, busy=2)  # none waiting, 2 running for three seconds
    sample = meter.sample(4.0, instances=2)
    assert (sample.seconds, sample.mean_depth, sample.mean_busy) == (4.0, 1.0, 1.75)
    assert sample.peak_busy == 2
    after = meter.sample(6.0, instances=2)  # the state carries on into the next sample
    assert (after.mean_depth, after.mean_busy, after.peak_busy) == (0.0, 2.0, 2)


def test_fixed_count_and_bounds_in_model_yaml() -> None:
    assert InstancesConfig.model_validate(3) == InstancesConfig(min=3, max=3)
    assert not InstancesConfig.model_validate(3).adaptive
    assert InstancesConfig.model_validate({"min": 2}).max == 2
    assert InstancesConfig.model_validate({"min": 1, "max": 4}).adaptive
