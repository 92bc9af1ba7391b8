"""Adaptive instance counts: what a batcher measures, and when its count should change.

    LoadMeter           time-weighted queue depth and busy instances of one batcher
    LoadSample          what the meter saw between two samples
    InstanceController  per version: sample in, grow / shrink / nothing out

The controller is pure: it is handed each sample with the time it was taken (the caller's
clock, injectable), so tests drive it second by second. The rules (``instances`` in
model.yaml, :class:`inferd.config.InstancesConfig`):

- *pressure*: over a sample interval the queue held at least ``grow_queue_depth`` requests
  on average and every instance was busy at some moment (a queue that waits for company
  with instances free, ``max_queue_delay_ms``, is not pressure). Pressure in every sample
  for ``grow_after_s`` adds one instance. A burst that the current instances clear within
  the window (a blip) breaks the run and adds nothing.
- *spare capacity*: the queue stayed below the pressure threshold and the mean busy
  instances were at most ``shrink_utilization`` of one instance fewer. Spare capacity in
  every sample for ``shrink_after_s`` removes one. The gap between the two rules is the
  hysteresis that keeps a steady load from flapping between two counts.

After each change both runs start again: every step needs a whole window of its own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from inferd.config import InstancesConfig


@dataclass(frozen=True, slots=True)
class LoadSample:
    """A batcher's load between two samples.

    Attributes:
        seconds: length of the interval.
        mean_depth: requests waiting, averaged over time.
        mean_busy: runtime calls running, averaged over time.
        peak_busy: the most runtime calls running at once.
        instances: the instance count at the end of the interval.
    """

    seconds: float
    mean_depth: float
    mean_busy: float
    peak_busy: int
    instances: int


class LoadMeter:
    """Integrates queue depth and busy instances over time; updated on the event loop by
    the batcher whenever either changes, read by :meth:`sample`."""

    __slots__ = ("_busy", "_busy_area", "_depth", "_depth_area", "_last", "_peak", "_start")

    def __init__(self, now: float) -> None:
        self._start = self._last = now
        self._depth = self._busy = self._peak = 0
        self._depth_area = self._busy_area = 0.0

    def update(self, now: float, depth: int, busy: int) -> None:
        """The queue holds ``depth`` requests and ``busy`` calls run, from ``now`` on."""
        elapsed = now - self._last
        if elapsed > 0:
            self._depth_area += self._depth * elapsed
            self._busy_area += self._busy * elapsed
            self._last = now
        self._depth, self._busy = depth, busy
        if busy > self._peak:
            self._peak = busy

    def sample(self, now: float, instances: int) -> LoadSample:
        """The load since the previous sample (or since the meter started); starts anew."""
        self.update(now, self._depth, self._busy)
        seconds = now - self._start
        if seconds <= 0:
            sample = LoadSample(0.0, float(self._depth), float(self._busy), self._peak, instances)
        else:
            sample = LoadSample(
                seconds, self._depth_area / seconds, self._busy_area / seconds, self._peak,
                instances,
            )  # fmt: skip
        self._start = now
        self._depth_area = self._busy_area = 0.0
        self._peak = self._busy
        return sample


class Change(enum.StrEnum):
    """Why an instance count changed; the ``reason`` label of the metrics."""

    QUEUE_DEPTH = "queue_depth"
    IDLE = "idle"


@dataclass(frozen=True, slots=True)
class Decision:
    """One step: the new count, why, and a sentence for the log."""

    instances: int
    reason: Change
    detail: str


class InstanceController:
    """Decides one version's instance count from successive load samples.

    Args:
        config: the model's ``instances`` (bounds and windows).
    """

    def __init__(self, config: InstancesConfig) -> None:
        self.config = config
        self._pressed_since: float | None = None
        self._spare_since: float | None = None

    def observe(
        self, sample: LoadSample, now: float, ceiling: int | None = None
    ) -> Decision | None:
        """Take the sample that ends at ``now``; return a change to make, or None.

        Args:
            sample: the load since the previous call.
            now: the caller's clock when the sample was taken (seconds).
            ceiling: the most instances allowed now (the CPU share of this worker,
                inferd.serving.instances); the config's ``max`` when None.
        """
        cfg = self.config
        start = now - sample.seconds
        limit = min(cfg.max, ceiling) if ceiling is not None else cfg.max
        count = sample.instances
        pressed = sample.mean_depth >= cfg.grow_queue_depth and sample.peak_busy >= count
        fewer = count - 1
        spare = (
            fewer >= cfg.min
            and sample.mean_depth < cfg.grow_queue_depth
            and sample.mean_busy <= fewer * cfg.shrink_utilization
        )
        self._pressed_since = _since(self._pressed_since, start) if pressed else None
        self._spare_since = _since(self._spare_since, start) if spare else None
        if self._pressed_since is not None and count < limit:
            lasted = now - self._pressed_since
            if lasted >= cfg.grow_after_s:
                detail = (f"queue depth {sample.mean_depth:.1f} >= {cfg.grow_queue_depth:g} "
                          f"with every instance busy for {lasted:.1f} s")  # fmt: skip
                return self._changed(count + 1, Change.QUEUE_DEPTH, detail)
        if self._spare_since is not None:
            lasted = now - self._spare_since
            if lasted >= cfg.shrink_after_s:
                detail = (f"{sample.mean_busy:.2f} instances busy on average, at most "
                          f"{cfg.shrink_utilization:g} of {fewer}, for {lasted:.1f} s")  # fmt: skip
                return self._changed(fewer, Change.IDLE, detail)
        return None

    def _changed(self, count: int, reason: Change, detail: str) -> Decision:
        # Every step needs a whole window of its own.
        self._pressed_since = self._spare_since = None
        return Decision(count, reason, detail)


def _since(began: float | None, start: float) -> float:
    """When a run that includes the interval from ``start`` began."""
    return start if began is None else began
