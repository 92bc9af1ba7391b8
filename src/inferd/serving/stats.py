"""Per-version inference statistics in the shape of Triton's statistics extension.

These are process-local counters for ``/v2/models/{m}/stats`` (what perf_analyzer reads);
the Prometheus metrics in ``inferd.monitoring`` are the cross-process source of truth.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class _Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.ns += int(seconds * 1e9)

    def to_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass(slots=True)
class _BatchStat:
    compute_infer: _Duration = field(default_factory=_Duration)


@dataclass(slots=True)
class ModelStats:
    """Counters of one loaded version; updated on the event loop thread only."""

    success: _Duration = field(default_factory=_Duration)
    fail: _Duration = field(default_factory=_Duration)
    queue: _Duration = field(default_factory=_Duration)
    compute_infer: _Duration = field(default_factory=_Duration)
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    batches: dict[int, _BatchStat] = field(default_factory=dict)

    def record_request(self, ok: bool, total_s: float, queue_s: float, compute_s: float) -> None:
        """Count one answered request (called per request)."""
        if ok:
            self.success.add(total_s)
            self.queue.add(queue_s)
            self.compute_infer.add(compute_s)
        else:
            self.fail.add(total_s)
        self.last_inference_ms = int(time.time() * 1000)

    def record_batch(self, rows: int, compute_s: float) -> None:
        """Count one runtime execution (called per batch)."""
        self.execution_count += 1
        self.inference_count += rows
        stat = self.batches.get(rows)
        if stat is None:
            stat = self.batches[rows] = _BatchStat()
        stat.compute_infer.add(compute_s)

    def to_triton(self, name: str, version: str) -> dict[str, Any]:
        """The ``model_stats`` entry Triton answers for one version."""
        zero = {"count": 0, "ns": 0}
        # perf_analyzer refuses statistics whose compute_input/infer/output counts differ;
        # inferd times input and output handling as part of compute_infer.
        untimed = {"count": self.compute_infer.count, "ns": 0}
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.to_dict(),
                "fail": self.fail.to_dict(),
                "queue": self.queue.to_dict(),
                "compute_input": untimed,
                "compute_infer": self.compute_infer.to_dict(),
                "compute_output": untimed,
                "cache_hit": zero,
                "cache_miss": zero,
            },
            "batch_stats": [
                {
                    "batch_size": size,
                    "compute_input": {"count": s.compute_infer.count, "ns": 0},
                    "compute_infer": s.compute_infer.to_dict(),
                    "compute_output": {"count": s.compute_infer.count, "ns": 0},
                }
                for size, s in sorted(self.batches.items())
            ],
        }
