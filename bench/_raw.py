"""Raw onnxruntime throughput in this process: the ceiling that served throughput is compared to.

Two session settings are measured: the server's own (``intra_op_num_threads=1``,
``inter_op_num_threads=1``, all graph optimisations; see ``inferd.runtimes.onnx``) and
onnxruntime's defaults (one intra-op thread per core).
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _server import busy_cpu_seconds

BATCH_SIZES = (1, 8, 16, 32, 64, 128)


@dataclass(frozen=True, slots=True)
class RawPoint:
    """Samples per second of one session setting at one batch size."""

    threads: str  # "server (1/1)" or "default"
    batch_size: int
    samples_per_s: float
    other_cores: float  # load of other processes meanwhile; above ~0.25 the point is low


def _session(model: Path, server_threads: bool) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if server_threads:
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
    return ort.InferenceSession(
        str(model), sess_options=options, providers=["CPUExecutionProvider"]
    )


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _samples_per_s(session: Any, batch: np.ndarray, seconds: float) -> tuple[float, float]:
    """(samples/s, cores used by other processes meanwhile)."""
    for _ in range(5):
        session.run(None, {"x": batch})
    busy0, own0 = busy_cpu_seconds(), _own_cpu_seconds()
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or runs < 10:
        session.run(None, {"x": batch})
        runs += 1
    other = (busy_cpu_seconds() - busy0) - (_own_cpu_seconds() - own0)
    return runs * batch.shape[0] / elapsed, max(0.0, other) / elapsed


def measure(model: Path, features: int, seconds: float = 1.0) -> list[RawPoint]:
    """Samples/s of ``model`` (input ``x`` FP32 [n, features]) for each batch size and setting."""
    rng = np.random.default_rng(1)
    points = []
    for server_threads, label in ((True, "server (1/1)"), (False, "default")):
        session = _session(model, server_threads)
        for size in BATCH_SIZES:
            batch = rng.standard_normal((size, features)).astype(np.float32)
            rate, other = _samples_per_s(session, batch, seconds)
            points.append(RawPoint(label, size, rate, other))
    return points
