import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from fixtures.models import write_python_model, xy_yaml

from inferd.api.app import build_app
from inferd.errors import InferenceFailed, InvalidInput, ModelNotFound
from inferd.serving.dataplane import DataPlane
from inferd.settings import Settings
from inferd.traffic.agreement import Agreement, Comparison, compare, compare_group, layout
from inferd.traffic.shadow import MAX_GROUP, Runner, ShadowMirror
from inferd.traffic.shadow_config import ShadowConfig, parse_spec
from inferd.types import InferenceRequest, InferenceResponse


def request(model: str = "m", rid: str | None = "r", x: float = 1.0) -> InferenceRequest:
    return InferenceRequest(model, None, {"x": np.array([x], dtype=np.float32)}, id=rid)


def answer(y: float = 3.0, version: str = "2") -> InferenceResponse:
    return InferenceResponse("m", version, {"y": np.array([y], dtype=np.float32)})


Outputs = dict[str, np.ndarray]
PICKY = """\
from inferd.runtimes.python import PythonModel


class Picky(PythonModel):
    def infer(self, inputs):
        if (inputs["x"] < 0).any():
            raise ValueError("negative input")
        return {"y": inputs["x"] * 2 + 1}
"""


def each(run: Callable[[InferenceRequest, str], Awaitable[Outputs]]) -> Runner:
    """The mirror's group runner made of a runner of one copy (its error is that copy's)."""

    async def runner(requests: list[InferenceRequest], version: str) -> list[Outputs | Exception]:
        answers: list[Outputs | Exception] = []
        for req in requests:
            try:
                answers.append(await run(req, version))
            except Exception as err:
                answers.append(err)
        return answers

    return runner


# -- agreement math -------------------------------------------------------------------------


def test_float_outputs_give_the_mean_absolute_difference() -> None:
    got = compare({"y": np.array([1.0, 2.0, 4.0])}, {"y": np.array([1.5, 2.0, 1.0])})
    assert (got.comparable, got.values, got.label_rows) == (True, 3, 0)
    assert got.abs_diff_sum == pytest.approx(3.5)
    assert got.max_abs_diff == pytest.approx(3.0)


def test_float_vectors_compare_their_argmax_and_their_values() -> None:
    primary = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], dtype=np.float32)
    shadow = np.array([[0.2, 0.8], [0.4, 0.6], [0.1, 0.9]], dtype=np.float32)
    got = compare({"p": primary}, {"p": shadow})
    assert (got.label_rows, got.label_matches, got.values) == (3, 2, 6)
    assert got.abs_diff_sum == pytest.approx(np.abs(primary - shadow).sum(), rel=1e-6)


def test_integer_and_bytes_outputs_are_labels_matched_row_by_row() -> None:
    labels = compare({"c": np.array([1, 2, 3, 4])}, {"c": np.array([1, 0, 3, 0])})
    assert (labels.label_rows, labels.label_matches, labels.values) == (4, 2, 0)
    rows = compare({"c": np.array([[1, 2], [3, 4]])}, {"c": np.array([[1, 2], [3, 5]])})
    assert (rows.label_rows, rows.label_matches) == (2, 1)
    text = compare({"s": np.array([b"cat", b"dog"], dtype=object)},
                   {"s": np.array([b"cat", b"cow"], dtype=object)})  # fmt: skip
    assert (text.label_rows, text.label_matches) == (2, 1)


def test_outputs_of_other_names_shapes_or_kinds_are_incomparable() -> None:
    assert not compare({"y": np.zeros(3)}, {"z": np.zeros(3)}).comparable
    assert not compare({"y": np.zeros(3)}, {"y": np.zeros(4)}).comparable
    assert not compare({"y": np.zeros(3)}, {"y": np.zeros(3, dtype=np.int64)}).comparable


def test_non_finite_pairs_are_left_out_of_the_difference() -> None:
    got = compare({"y": np.array([1.0, np.nan])}, {"y": np.array([2.0, 0.0])})
    assert (got.values, got.abs_diff_sum) == (1, 1.0)


def test_agreement_merges_exactly_and_round_trips() -> None:
    one, two = Agreement(), Agreement()
    one.take()
    one.add(Comparison(label_rows=4, label_matches=3, values=2, abs_diff_sum=1.0,
                       max_abs_diff=0.75), 2.0, 5.0)  # fmt: skip
    two.take()
    two.drop()
    two.fail()
    two.add(Comparison(comparable=False), 3.0, 7.0)
    merged = Agreement.from_dict(one.to_dict()).merge(Agreement.from_dict(two.to_dict()))
    summary = merged.summary()
    assert summary["sampled"] == 3
    assert (summary["mirrored"], summary["dropped"], summary["failed"]) == (2, 1, 1)
    assert (summary["compared"], summary["incomparable"]) == (1, 1)
    assert summary["exact_match_rate"] == 0.75
    assert summary["mean_abs_diff"] == 0.5
    assert summary["max_abs_diff"] == 0.75
    assert summary["shadow_latency_ms"]["mean"] == 6.0
    with pytest.raises(ValueError, match="missing"):
        Agreement.from_dict({"mirrored": 1})


def test_a_group_compares_to_the_sum_of_its_copies() -> None:
    rng = np.random.default_rng(7)
    primaries = [{"p": rng.random((n, 3)), "c": rng.integers(0, 2, (n, 2))} for n in (1, 4, 2)]
    shadows = [{"p": rng.random(o["p"].shape), "c": rng.integers(0, 2, o["c"].shape)}
               for o in primaries]  # fmt: skip
    shapes = {layout(p, s) for p, s in zip(primaries, shadows, strict=True)}
    assert len(shapes) == 1
    assert None not in shapes
    group = compare_group(primaries, shadows)
    alone = [compare(p, s) for p, s in zip(primaries, shadows, strict=True)]
    assert group.label_rows == sum(c.label_rows for c in alone) == 2 * 7
    assert group.label_matches == sum(c.label_matches for c in alone)
    assert group.values == sum(c.values for c in alone) == 21
    assert group.abs_diff_sum == pytest.approx(sum(c.abs_diff_sum for c in alone), rel=1e-12)
    assert group.max_abs_diff == max(c.max_abs_diff for c in alone)
    one, many = Agreement(), Agreement()
    for comparison in alone:
        one.add(comparison, 2.0, 5.0)
    many.add_group(group, [2.0, 2.0, 2.0], 5.0)
    assert {k: v for k, v in one.summary().items() if k != "mean_abs_diff"} == {
        k: v for k, v in many.summary().items() if k != "mean_abs_diff"
    }
    assert many.summary()["mean_abs_diff"] == pytest.approx(one.summary()["mean_abs_diff"])


def test_copies_that_must_be_compared_alone_have_no_layout() -> None:
    y = np.zeros(2, np.float32)
    assert layout({"y": y}, {"z": y}) is None  # missing on the shadow side
    assert layout({"y": y}, {"y": np.zeros(3, np.float32)}) is None  # another shape
    assert layout({"y": np.float32(1.0) * np.ones(())}, {"y": np.ones(())}) is None  # a scalar
    assert layout({"y": y}, {"y": y.astype(np.float64)}) != layout({"y": y}, {"y": y})


def test_empty_agreement_reports_no_rates() -> None:
    summary = Agreement().summary()
    assert summary["exact_match_rate"] is None
    assert summary["mean_abs_diff"] is None
    assert summary["shadow_latency_ms"]["p99"] is None


# -- configuration --------------------------------------------------------------------------


def test_spec_refuses_a_fraction_outside_0_to_1_naming_the_field() -> None:
    assert parse_spec({"version": 2, "fraction": 0.1}).queue_size == 1000
    with pytest.raises(InvalidInput, match=r"shadow\.fraction.*1\.5"):
        parse_spec({"version": 2, "fraction": 1.5})
    with pytest.raises(InvalidInput, match=r"shadow\.version"):
        parse_spec({"fraction": 0.5})
    with pytest.raises(InvalidInput, match=r"shadow\.queue_size"):
        parse_spec({"version": 1, "fraction": 0.5, "queue_size": 0})
    with pytest.raises(InvalidInput, match=r"shadow\.extra"):
        parse_spec({"version": 1, "fraction": 0.5, "extra": 1})


# -- the mirror -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ids",
    [[f"r{i}" for i in range(20_000)], [str(uuid.UUID(int=i * 7919 + 1)) for i in range(20_000)]],
    ids=["sequential", "uuids"],
)
@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5])
def test_sampling_is_deterministic_per_request_id_and_near_the_fraction(
    ids: list[str], fraction: float
) -> None:
    def sampled(mirror: ShadowMirror) -> set[str]:
        target = mirror.targets["m"]
        return {i for i in ids if target.sampled(i)}

    one, two = ShadowMirror(), ShadowMirror()
    for mirror in (one, two):
        mirror.apply([ShadowConfig("m", 1, fraction, 10)])
    first = sampled(one)
    assert first == sampled(two)
    assert abs(len(first) / len(ids) - fraction) < max(0.1 * fraction, 0.002)


def test_requests_without_an_id_are_sampled_at_the_fraction() -> None:
    mirror = ShadowMirror()
    mirror.apply([ShadowConfig("m", 1, 0.25, 10)])
    target = mirror.targets["m"]
    assert sum(target.sampled(None) for _ in range(1000)) in range(248, 253)


async def test_a_full_queue_drops_and_counts() -> None:
    gate = asyncio.Event()
    ran: list[str] = []

    async def runner(req: InferenceRequest, version: str) -> dict[str, np.ndarray]:
        ran.append(f"{req.id}@{version}")
        await gate.wait()
        return {"y": np.array([3.0], dtype=np.float32)}

    mirror = ShadowMirror(gather_s=0)
    mirror.runner = each(runner)
    mirror.apply([ShadowConfig("m", 1, 1.0, 2)])
    for i in range(5):  # no await between: the consumer has not taken any yet
        mirror.offer(request(rid=f"r{i}"), answer())
    agreement = mirror.agreement("m")[("2", "1")]
    assert (agreement.mirrored, agreement.dropped) == (0, 3)  # two wait, three were refused
    await asyncio.sleep(0)
    assert (agreement.mirrored, agreement.dropped) == (2, 3)  # taken to run
    gate.set()
    await mirror.idle()
    assert ran == ["r0@1", "r1@1"]
    assert (agreement.compared, agreement.label_rows, agreement.values) == (2, 0, 2)
    await mirror.close()


async def test_a_shadow_failure_is_counted_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def runner(req: InferenceRequest, version: str) -> dict[str, np.ndarray]:
        raise InferenceFailed("m", version, "boom")

    mirror = ShadowMirror(gather_s=0)
    mirror.runner = each(runner)
    mirror.apply([ShadowConfig("m", 1, 1.0, 10)])
    for i in range(3):
        mirror.offer(request(rid=f"r{i}"), answer())
    await mirror.idle()
    agreement = mirror.agreement("m")[("2", "1")]
    assert (agreement.failed, agreement.compared) == (3, 0)
    failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert failed == ["shadow m version 1: 3 of 3 copies failed: model 'm' version 1: "
                      "inference failed: boom"]  # fmt: skip
    await mirror.close()


async def test_a_runner_that_raises_fails_the_whole_group() -> None:
    async def runner(requests: list[InferenceRequest], version: str) -> list[Outputs | Exception]:
        raise ModelNotFound("m", version)

    mirror = ShadowMirror(gather_s=0)
    mirror.runner = runner
    mirror.apply([ShadowConfig("m", 1, 1.0, 10)])
    mirror.offer(request(rid="a"), answer())
    mirror.offer(request(rid="b"), answer())
    await mirror.idle()
    assert mirror.agreement("m")[("2", "1")].failed == 2
    await mirror.close()


async def test_copies_queued_together_run_as_one_group_in_order() -> None:
    calls: list[list[str | None]] = []

    async def runner(requests: list[InferenceRequest], version: str) -> list[Outputs | Exception]:
        calls.append([r.id for r in requests])
        assert version == "1"
        return [{"y": np.array([3.0], dtype=np.float32)} for _ in requests]

    mirror = ShadowMirror(gather_s=0)
    mirror.runner = runner
    mirror.apply([ShadowConfig("m", 1, 1.0, 1000)])
    for i in range(300):  # queued before the consumer first runs
        mirror.offer(request(rid=f"r{i}"), answer())
    await mirror.idle()
    assert [len(c) for c in calls] == [MAX_GROUP, 300 - MAX_GROUP]
    assert calls[0][:2] == ["r0", "r1"]
    assert mirror.agreement("m")[("2", "1")].compared == 300
    await mirror.close()


async def test_a_group_gathers_for_gather_s_before_it_runs() -> None:
    calls: list[int] = []

    async def runner(requests: list[InferenceRequest], version: str) -> list[Outputs | Exception]:
        calls.append(len(requests))
        return [{"y": np.array([3.0], dtype=np.float32)} for _ in requests]

    mirror = ShadowMirror(gather_s=0.05)
    mirror.runner = runner
    mirror.apply([ShadowConfig("m", 1, 1.0, 100)])
    mirror.offer(request(rid="first"), answer())
    await asyncio.sleep(0)  # the consumer takes the first copy and starts gathering
    for i in range(4):  # arriving one by one, while it gathers
        mirror.offer(request(rid=f"r{i}"), answer())
        await asyncio.sleep(0)
    await mirror.idle()
    assert calls == [5]
    await mirror.close()


async def test_copies_gathering_when_the_shadow_is_removed_count_as_dropped() -> None:
    async def runner(requests: list[InferenceRequest], version: str) -> list[Outputs | Exception]:
        raise AssertionError("never run: removed while gathering")

    mirror = ShadowMirror(gather_s=60)
    mirror.runner = runner
    mirror.apply([ShadowConfig("m", 1, 1.0, 100)])
    for i in range(3):
        mirror.offer(request(rid=f"r{i}"), answer())
        await asyncio.sleep(0)
    mirror.apply([])
    await asyncio.sleep(0)  # the consumer sees its cancellation
    agreement = mirror.agreement("m")[("2", "1")]
    assert (agreement.mirrored, agreement.dropped, agreement.failed) == (0, 3, 0)


def test_a_runner_answering_fewer_copies_is_an_error_not_a_miscount() -> None:
    async def runner(requests: list[InferenceRequest], version: str) -> list[Outputs | Exception]:
        return []

    async def go() -> Agreement:
        mirror = ShadowMirror(gather_s=0)
        mirror.runner = runner
        mirror.apply([ShadowConfig("m", 1, 1.0, 10)])
        mirror.offer(request(), answer())
        await mirror.idle()
        await mirror.close()
        return mirror.agreement("m")[("2", "1")]

    assert asyncio.run(go()).failed == 1


async def test_the_shadow_version_answering_itself_is_not_mirrored() -> None:
    mirror = ShadowMirror()
    mirror.runner = None
    mirror.apply([ShadowConfig("m", 2, 1.0, 10)])
    mirror.offer(request(), answer(version="2"))
    assert mirror.agreement("m") == {}


async def test_removing_a_shadow_drops_its_queued_copies() -> None:
    gate = asyncio.Event()

    async def runner(req: InferenceRequest, version: str) -> dict[str, np.ndarray]:
        await gate.wait()
        return {"y": np.array([3.0], dtype=np.float32)}

    mirror = ShadowMirror()
    mirror.runner = each(runner)
    mirror.apply([ShadowConfig("m", 1, 1.0, 10)])
    for i in range(3):
        mirror.offer(request(rid=f"r{i}"), answer())
    mirror.apply([])
    agreement = mirror.agreement("m")[("2", "1")]
    assert (agreement.mirrored, agreement.dropped) == (0, 3)
    assert mirror.targets == {}
    mirror.offer(request(), answer())  # no target any more: nothing happens
    assert agreement.total == 3


def test_flush_writes_only_pairs_that_changed() -> None:
    written: list[dict[tuple[str, str, str], dict[str, object]]] = []

    class Store:
        def revision(self) -> int:
            return 1

        def configs(self) -> list[ShadowConfig]:
            return []

        def save_aggregates(self, source: str, data: dict, now: object) -> None:  # type: ignore[type-arg]
            written.append(data)

    mirror = ShadowMirror(Store())
    mirror.pairs[("m", "2", "1")] = Agreement()
    mirror.pairs[("m", "2", "1")].drop()
    mirror.write(mirror.collect())
    mirror.write(mirror.collect())  # nothing changed: nothing written
    assert [list(d) for d in written] == [[("m", "2", "1")]]


# -- through the data plane -----------------------------------------------------------------


@pytest.fixture
async def plane(repo: Path, tmp_path: Path) -> AsyncIterator[DataPlane]:
    dp = build_app(Settings(home=tmp_path, model_repository=repo)).dataplane
    assert await dp.start() == {}
    yield dp
    await dp.traffic.shadow.close()
    await dp.stop()


def linear(values: list[float], rid: str) -> InferenceRequest:
    return InferenceRequest("linear", None, {"x": np.array(values, dtype=np.float32)}, id=rid)


async def test_the_client_result_is_unchanged_and_agreement_is_measured(plane: DataPlane) -> None:
    before = await plane.infer(linear([1, 2, 3], "a"), "test")
    plane.traffic.shadow.apply([ShadowConfig("linear", 1, 1.0, 100)])
    after = await plane.infer(linear([1, 2, 3], "b"), "test")
    assert (after.model_version, after.parameters) == (before.model_version, before.parameters)
    np.testing.assert_array_equal(after.outputs["y"], [4, 7, 10])  # 3x + 1: version 2's
    await plane.traffic.shadow.idle()
    agreement = plane.traffic.shadow.agreement("linear")[("2", "1")]
    assert (agreement.compared, agreement.values) == (1, 3)
    assert agreement.abs_diff_sum == pytest.approx(6.0)  # |3x+1 - (2x+1)| = x
    np.testing.assert_array_equal(after.outputs["y"], [4, 7, 10])  # still, after the shadow
    stats = plane.statistics("linear", "1")["model_stats"][0]
    assert stats["inference_stats"]["success"]["count"] == 0  # shadows are not client requests


async def test_a_failing_shadow_never_reaches_the_client(plane: DataPlane) -> None:
    plane.traffic.shadow.apply([ShadowConfig("linear", 9, 1.0, 100)])  # no version 9
    responses = await asyncio.gather(*(plane.infer(linear([1.0], f"r{i}"), "t") for i in range(5)))
    assert [r.outputs["y"].tolist() for r in responses] == [[4.0]] * 5
    await plane.traffic.shadow.idle()
    agreement = plane.traffic.shadow.agreement("linear")[("2", "9")]
    assert (agreement.failed, agreement.compared) == (5, 0)


async def test_the_runner_packs_copies_into_batches_and_answers_each(plane: DataPlane) -> None:
    runner = plane.traffic.shadow.runner
    assert runner is not None
    rows = [[float(i)] * (1 + i % 3) for i in range(40)]  # 1, 2 or 3 rows each
    requests = [linear(r, f"r{i}") for i, r in enumerate(rows)]
    requests.append(InferenceRequest("linear", None, {"z": np.zeros(1, np.float32)}, id="bad"))
    shadow = plane.manager.get("linear", "1")
    assert shadow.batcher is not None
    calls = shadow.stats.execution_count
    answers = await runner(requests, "1")
    for values, got in zip(rows, answers[:-1], strict=True):
        assert isinstance(got, dict)
        np.testing.assert_array_equal(got["y"], [2 * v + 1 for v in values])  # version 1's
    assert isinstance(answers[-1], InvalidInput)  # only the copy that does not fit
    # 80 rows in packs of at most max_batch_size: a few runtime calls, not one per copy.
    most = -(-80 // shadow.batcher.policy.max_batch_size) + 1
    assert shadow.stats.execution_count - calls <= most


async def test_a_bad_copy_in_a_pack_fails_alone(repo: Path, tmp_path: Path) -> None:
    write_python_model(repo, "picky", PICKY, xy_yaml("python", 16))
    dp = build_app(Settings(home=tmp_path, model_repository=repo)).dataplane
    assert await dp.start() == {}
    try:
        runner = dp.traffic.shadow.runner
        assert runner is not None
        values = [1.0, 2.0, -1.0, 3.0]
        requests = [InferenceRequest("picky", None, {"x": np.array([v], np.float32)}, id=str(v))
                    for v in values]  # fmt: skip
        answers = await runner(requests, "1")
        assert [a["y"].tolist() if isinstance(a, dict) else type(a).__name__ for a in answers] == [
            [3.0], [5.0], "InferenceFailed", [7.0]
        ]  # fmt: skip
        outputs = await runner([dataclasses.replace(requests[0], outputs=["y"])], "1")
        assert list(outputs[0]) == ["y"]  # type: ignore[arg-type]
    finally:
        await dp.stop()


async def test_tick_applies_new_configs_when_the_revision_moves() -> None:
    class Store:
        revision_now = 1
        found = [ShadowConfig("m", 1, 0.5, 10)]

        def revision(self) -> int:
            return self.revision_now

        def configs(self) -> list[ShadowConfig]:
            return list(self.found)

        def save_aggregates(self, source: str, data: dict, now: object) -> None:  # type: ignore[type-arg]
            pass

    store = Store()
    mirror = ShadowMirror(store)
    await mirror.tick()
    assert mirror.targets["m"].config.fraction == 0.5
    store.found = []
    await mirror.tick()  # same revision: not read again
    assert "m" in mirror.targets
    store.revision_now = 2
    await mirror.tick()
    assert mirror.targets == {}
