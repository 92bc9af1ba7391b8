import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from inferd.api.app import build_app
from inferd.errors import InferenceFailed, InvalidInput
from inferd.serving.dataplane import DataPlane
from inferd.settings import Settings
from inferd.traffic.agreement import Agreement, Comparison, compare
from inferd.traffic.shadow import ShadowMirror
from inferd.traffic.shadow_config import ShadowConfig, parse_spec
from inferd.types import InferenceRequest, InferenceResponse


def request(model: str = "m", rid: str | None = "r", x: float = 1.0) -> InferenceRequest:
    return InferenceRequest(model, None, {"x": np.array([x], dtype=np.float32)}, id=rid)


def answer(y: float = 3.0, version: str = "2") -> InferenceResponse:
    return InferenceResponse("m", version, {"y": np.array([y], dtype=np.float32)})


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
    one.queue()
    one.add(Comparison(label_rows=4, label_matches=3, values=2, abs_diff_sum=1.0,
                       max_abs_diff=0.75), 2.0, 5.0)  # fmt: skip
    two.queue()
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


def test_sampling_is_deterministic_per_request_id_and_near_the_fraction() -> None:
    def sampled(mirror: ShadowMirror) -> set[str]:
        target = mirror.targets["m"]
        return {f"r{i}" for i in range(20_000) if target.sampled(f"r{i}")}

    one, two = ShadowMirror(), ShadowMirror()
    for mirror in (one, two):
        mirror.apply([ShadowConfig("m", 1, 0.1, 10)])
    first = sampled(one)
    assert first == sampled(two)
    assert abs(len(first) / 20_000 - 0.1) < 0.01


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

    mirror = ShadowMirror()
    mirror.runner = runner
    mirror.apply([ShadowConfig("m", 1, 1.0, 2)])
    for i in range(5):  # no await between: the consumer has not taken any yet
        mirror.offer(request(rid=f"r{i}"), answer())
    agreement = mirror.agreement("m")[("2", "1")]
    assert (agreement.mirrored, agreement.dropped) == (2, 3)
    gate.set()
    await mirror.idle()
    assert ran == ["r0@1", "r1@1"]
    assert (agreement.compared, agreement.label_rows, agreement.values) == (2, 0, 2)
    await mirror.close()


async def test_a_shadow_failure_is_counted_not_raised() -> None:
    async def runner(req: InferenceRequest, version: str) -> dict[str, np.ndarray]:
        raise InferenceFailed("m", version, "boom")

    mirror = ShadowMirror()
    mirror.runner = runner
    mirror.apply([ShadowConfig("m", 1, 1.0, 10)])
    mirror.offer(request(), answer())
    await mirror.idle()
    agreement = mirror.agreement("m")[("2", "1")]
    assert (agreement.failed, agreement.compared) == (1, 0)
    await mirror.close()


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
    mirror.runner = runner
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
