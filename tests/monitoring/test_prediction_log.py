"""The prediction log on its own: rows, partitions, sampling, the bounded queue, failing and
full sinks, the shutdown flush, and reading a window back."""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from prometheus_client import CollectorRegistry

from inferd.config import ModelConfig
from inferd.monitoring.prediction_log import Entry, PredictionLog
from inferd.monitoring.prediction_log_reader import read_window, tensors, window_files
from inferd.monitoring.prediction_log_writer import ParquetSink
from inferd.types import InferenceRequest, InferenceResponse

CONFIG = ModelConfig(name="m", platform="onnx")
T0 = datetime(2026, 12, 4, 14, 59, 58, tzinfo=UTC).timestamp()


def memory_uri() -> str:
    return f"memory://plog-{uuid.uuid4().hex}"


def pair(rows: int, seed: int = 0, rid: str | None = "r", version: str = "3") -> tuple[
    InferenceRequest, InferenceResponse
]:  # fmt: skip
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 4)).astype(np.float32)
    k = rng.integers(0, 100, rows).astype(np.int64)
    request = InferenceRequest("m", version, {"x": x, "k": k}, id=rid)
    outputs = {"y": x.sum(axis=1, keepdims=True).astype(np.float64)}
    response = InferenceResponse("m", version, outputs, id=rid, latency_ms=1.5 + seed)
    return request, response


def make_log(uri: str, rate: float = 1.0, **kw: Any) -> tuple[PredictionLog, CollectorRegistry]:
    registry = CollectorRegistry()
    return PredictionLog(ParquetSink(uri, kw.pop("filesystem", None)), rate, registry, **kw), (
        registry
    )


def dropped(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value("inferd_prediction_log_dropped_total", {"reason": reason})
    return value or 0.0


def test_rows_round_trip_with_equal_values() -> None:
    uri = memory_uri()
    log, registry = make_log(uri)
    sent = [pair(3, seed=0, rid="a"), pair(2, seed=1, rid="b")]
    sent[1][1].parameters.update(experiment_id="e1", experiment_variant="treatment")
    log.write([Entry(T0, rq, rs) for rq, rs in sent])
    table = read_window(uri, "m", 3)
    assert table.num_rows == 5
    assert table.column("request_id").to_pylist() == ["a"] * 3 + ["b"] * 2
    assert table.column("row").to_pylist() == [0, 1, 2, 0, 1]
    assert table.column("variant").to_pylist() == [None] * 3 + ["treatment"] * 2
    assert table.column("experiment").to_pylist() == [None] * 3 + ["e1"] * 2
    assert table.column("latency_ms").to_pylist() == [1.5] * 3 + [2.5] * 2
    assert set(table.column("status").to_pylist()) == {200}
    assert table.column("model").to_pylist() == ["m"] * 5
    x = np.concatenate([rq.inputs["x"] for rq, _ in sent])
    np.testing.assert_array_equal(np.stack(table.column("input.x").to_numpy(False)), x)
    k = np.concatenate([rq.inputs["k"] for rq, _ in sent])
    np.testing.assert_array_equal(table.column("input.k").to_numpy(), k)
    y = np.concatenate([rs.outputs["y"] for _, rs in sent])
    np.testing.assert_array_equal(np.stack(table.column("output.y").to_numpy(False)), y)
    stamp = table.column("timestamp")[0].as_py()
    assert stamp == datetime.fromtimestamp(T0, UTC)
    assert log.written == 2
    assert registry.get_sample_value("inferd_prediction_log_written_total") == 2


def test_unbatched_tensors_are_one_row_each_flattened() -> None:
    uri = memory_uri()
    log, _ = make_log(uri)
    request = InferenceRequest("m", "1", {"a": np.arange(6.0).reshape(2, 3), "b": np.arange(5)})
    response = InferenceResponse("m", "1", {"out": np.array(7.0)})
    log.write([Entry(T0, request, response)])
    table = read_window(uri, "m", "1")
    assert table.num_rows == 1
    assert table.column("input.a").to_pylist() == [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]
    assert table.column("input.b").to_pylist() == [[0, 1, 2, 3, 4]]
    assert table.column("output.out").to_pylist() == [[7.0]]
    assert table.column("request_id").to_pylist() == [None]


def test_partitions_by_model_version_and_hour() -> None:
    uri = memory_uri()
    log, _ = make_log(uri)
    entries = [Entry(T0, *pair(1, rid="late-14")), Entry(T0 + 3, *pair(1, rid="early-15")),
               Entry(T0, *pair(1, rid="v4", version="4"))]  # fmt: skip
    log.write(entries)
    fs = fsspec.filesystem("memory")
    root = uri[len("memory://") :]
    names = sorted(p[len(root) + 2 :] for p in fs.find(root))
    assert [n.rsplit("/", 1)[0] for n in names] == [
        "model=m/version=3/hour=2026-12-04T14",
        "model=m/version=3/hour=2026-12-04T15",
        "model=m/version=4/hour=2026-12-04T14",
    ]
    assert all(n.rsplit("/", 1)[1].startswith("part-") and n.endswith(".parquet") for n in names)
    start = datetime(2026, 12, 4, 15, tzinfo=UTC)
    assert len(window_files(uri, "m", 3, since=start)) == 1
    assert read_window(uri, "m", 3, since=start).column("request_id").to_pylist() == ["early-15"]
    assert read_window(uri, "m", 3, until=start).column("request_id").to_pylist() == ["late-14"]
    assert read_window(uri, "m", 3, since=start + timedelta(hours=1)).num_rows == 0
    assert read_window(uri, "other", 3).num_rows == 0


def test_model_names_are_percent_encoded_in_paths() -> None:
    uri = memory_uri()
    log, _ = make_log(uri)
    request, response = pair(1)
    request.model_name = response.model_name = "a/b c"
    log.write([Entry(T0, request, response)])
    assert window_files(uri, "a/b c", 3)[0].split("/")[-4] == "model=a%2Fb%20c"
    assert read_window(uri, "a/b c", 3).num_rows == 1


def test_sampling_rate_is_within_binomial_bounds() -> None:
    log, _ = make_log(memory_uri(), rate=0.1, max_pending=100_000, seed=7)
    request, response = pair(1)
    n = 20_000
    for _ in range(n):
        log.offer(CONFIG, request, response)
    sd = math.sqrt(n * 0.1 * 0.9)
    assert abs(log.pending - n * 0.1) < 5 * sd, log.pending


def test_the_model_config_rate_overrides_the_server_rate() -> None:
    log, _ = make_log(memory_uri(), rate=1.0, seed=1)
    request, response = pair(1)
    for _ in range(500):
        log.offer(ModelConfig(name="m", platform="onnx", prediction_log_rate=0.0), *pair(1))
    assert log.pending == 0
    log.offer(CONFIG, request, response)
    assert log.pending == 1
    with pytest.raises(ValueError, match="prediction_log_rate"):
        ModelConfig(name="m", platform="onnx", prediction_log_rate=1.5)


def test_a_full_queue_drops_and_counts() -> None:
    log, registry = make_log(memory_uri(), max_pending=5)
    for _ in range(8):
        log.offer(CONFIG, *pair(1))
    assert log.pending == 5
    assert log.dropped["queue_full"] == 3
    assert dropped(registry, "queue_full") == 3


class FailingFileSystem(MemoryFileSystem):
    """An fsspec filesystem whose writes fail with ``error``."""

    protocol = "failing"

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def _open(self, path: str, mode: str = "rb", **kw: Any) -> Any:
        if "w" in mode:
            raise self.error
        return super()._open(path, mode, **kw)


async def test_a_failing_sink_drops_counts_and_warns_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    fs = FailingFileSystem(PermissionError(errno.EACCES, "read-only"))
    log, registry = make_log("/plog", filesystem=fs, clock=lambda: now[0], warn_every_s=60)
    caplog.set_level(logging.WARNING, "inferd.monitoring.prediction_log")
    for _ in range(3):
        log.offer(CONFIG, *pair(2))
        await log.flush()
    assert dropped(registry, "sink_error") == 3
    assert len(caplog.records) == 1
    assert "1 sampled requests dropped (sink_error, the latest: PermissionError" in caplog.text
    now[0] = 61.0
    log.offer(CONFIG, *pair(2))
    await log.flush()
    assert len(caplog.records) == 2
    assert "3 sampled requests dropped" in caplog.records[1].message


async def test_a_full_disk_is_counted_apart_and_leaves_no_partial_file() -> None:
    class FullDisk(MemoryFileSystem):
        protocol = "fulldisk"

        def _open(self, path: str, mode: str = "rb", **kw: Any) -> Any:
            handle = super()._open(path, mode, **kw)
            if "w" in mode:

                def write(data: Any) -> int:
                    raise OSError(errno.ENOSPC, "No space left on device")

                handle.write = write
            return handle

    fs = FullDisk()
    fs.store.clear()
    log, registry = make_log("/full", filesystem=fs)
    log.offer(CONFIG, *pair(4))
    await log.flush()
    assert dropped(registry, "disk_full") == 1
    assert log.written == 0
    assert [p for p in fs.find("/full") if p.endswith(".tmp")] == []


async def test_close_flushes_what_waits(tmp_path: Any) -> None:
    log, _ = make_log(str(tmp_path), flush_s=3600)
    for seed in range(4):
        log.offer(CONFIG, *pair(2, seed=seed, rid=f"r{seed}"))
    assert list(tmp_path.iterdir()) == []
    await log.close()
    files = list(tmp_path.rglob("*.parquet"))
    assert len(files) == 1
    assert pq.read_table(files[0]).num_rows == 8
    assert read_window(str(tmp_path), "m", 3).num_rows == 8


async def test_a_full_batch_flushes_before_the_timer(tmp_path: Any) -> None:
    log, _ = make_log(str(tmp_path), flush_s=3600, batch_requests=3)
    task = asyncio.create_task(log.run())
    try:
        for seed in range(3):
            log.offer(CONFIG, *pair(1, seed=seed))
        async with asyncio.timeout(10):
            # The write runs in a worker thread, which cannot set an asyncio.Event: poll, bounded.
            while log.written < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert read_window(str(tmp_path), "m", 3).num_rows == 3


def test_bytes_become_text_and_fp16_becomes_float32() -> None:
    uri = memory_uri()
    log, _ = make_log(uri)
    text = np.array([b"caf\xc3\xa9", b"b"], dtype=object)
    half = np.array([[0.5, 1.5], [2.5, -1.0]], dtype=np.float16)
    log.write([Entry(T0, InferenceRequest("m", "3", {"s": text}),
                     InferenceResponse("m", "3", {"h": half}))])  # fmt: skip
    table = read_window(uri, "m", 3)
    assert table.column("input.s").to_pylist() == ["café", "b"]
    assert table.schema.field("output.h").type.value_type == pa.float32()
    assert table.column("output.h").to_pylist() == [[0.5, 1.5], [2.5, -1.0]]


def test_the_queue_is_bounded_in_bytes_too() -> None:
    request, response = pair(10)  # 10 x 4 float32 + 10 int64 in, 10 float64 out: 320 bytes
    log, registry = make_log(memory_uri(), max_pending_bytes=1000)
    for _ in range(4):
        log.offer(CONFIG, request, response)
    assert log.pending == 3
    assert dropped(registry, "queue_full") == 1


def test_a_window_comes_back_as_the_tensors_the_model_saw() -> None:
    uri = memory_uri()
    log, _ = make_log(uri)
    sent = [pair(3, seed=0, rid="a"), pair(2, seed=1, rid="b")]
    log.write([Entry(T0, rq, rs) for rq, rs in sent])
    window = read_window(uri, "m", 3)
    inputs = tensors(window)
    assert sorted(inputs) == ["k", "x"]
    np.testing.assert_array_equal(inputs["x"], np.concatenate([rq.inputs["x"] for rq, _ in sent]))
    np.testing.assert_array_equal(inputs["k"], np.concatenate([rq.inputs["k"] for rq, _ in sent]))
    outputs = tensors(window, "output.")
    y = np.concatenate([rs.outputs["y"] for _, rs in sent])
    np.testing.assert_array_equal(outputs["y"], y)
    assert outputs["y"].dtype == np.float64
