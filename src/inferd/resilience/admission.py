"""Overload control: admission by traffic class in front of each model version's batcher.

    Admission (this module) ── one per process, held by the data plane
    └── Gate (gate.py)          per loaded version: who enters, waits or is shed
        └── AdaptiveLimit (concurrency.py)   the version's concurrency limit

The data plane asks the gate before it queues a request in a version's batcher (after the
request was validated, so a bad request is still a 400), and the gate measures what the
batcher did with it: latency, and the part of it spent queued.

Requests name their class in the V2 / ``/predict`` parameter ``traffic_class``:
``interactive`` (the default) or ``batch`` (offline scoring sent through the online API).
Shadow copies are the third class, set by the data plane. Under pressure shadow copies are
shed first (they never wait), then batch requests (they may hold only ``batch_share`` of the
limit and wait behind every interactive request), then interactive ones.

A model's ``overload`` section turns it on (``enabled``), or the server's ``overload_control``
does for models that leave ``enabled`` unset. Off, a request costs one attribute test here.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from inferd.batching.batcher import BatchResult
from inferd.config import ModelConfig
from inferd.errors import InvalidInput, RequestTimeout
from inferd.resilience.concurrency import LimitBounds
from inferd.resilience.config import OverloadConfig
from inferd.resilience.fallback import remaining_ms
from inferd.resilience.gate import Gate, Overloaded, TrafficClass
from inferd.serving.manager import ModelVersion
from inferd.types import InferenceRequest

__all__ = ["Admission", "OverloadMetrics", "Overloaded", "TrafficClass", "traffic_class"]

CLASS_PARAMETER = "traffic_class"
_CLASSES = {"interactive": TrafficClass.INTERACTIVE, "batch": TrafficClass.BATCH}
Submit = Callable[[], Awaitable[BatchResult]]


class OverloadMetrics:
    """``inferd_overload_shed_total``, ``inferd_concurrency_limit``,
    ``inferd_overload_in_flight`` and ``inferd_overload_waiting``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry(auto_describe=True)
        self.registry = r
        self.shed = Counter(
            "inferd_overload_shed_total",
            "Requests overload control refused with 503, by traffic class.",
            ["model", "traffic_class"], registry=r,
        )  # fmt: skip
        self.limit = Gauge(
            "inferd_concurrency_limit", "Adaptive concurrency limit of a version.",
            ["model", "version"], registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.in_flight = Gauge(
            "inferd_overload_in_flight", "Requests a version's concurrency limit holds now.",
            ["model", "version"], registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.waiting = Gauge(
            "inferd_overload_waiting", "Requests waiting for a slot under a version's limit.",
            ["model", "version"], registry=r, multiprocess_mode="livesum",
        )  # fmt: skip


def traffic_class(request: InferenceRequest) -> TrafficClass:
    """The class a request names in ``parameters.traffic_class`` (interactive by default).

    Raises:
        InvalidInput: a value other than ``interactive`` or ``batch``.
    """
    value = request.parameters.get(CLASS_PARAMETER)
    if value is None:
        return TrafficClass.INTERACTIVE
    found = _CLASSES.get(value) if isinstance(value, str) else None
    if found is None:
        raise InvalidInput(f"parameters.{CLASS_PARAMETER}", "'interactive' or 'batch'", repr(value))
    return found


class Admission:
    """The gates of one process, made on a version's first request under overload control.

    Args:
        registry: where the metrics register (the server's).
        default: overload control for models whose ``overload.enabled`` is unset.
        clock: monotonic seconds for the limiters' windows and the latencies they measure.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, default: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.metrics = OverloadMetrics(registry)
        self.default = default
        self._clock = clock
        self._gates: dict[tuple[str, str], tuple[Gate, ModelConfig]] = {}

    def enabled(self, version: ModelVersion) -> bool:
        """Whether ``version``'s requests pass through a gate."""
        on = version.config.overload.enabled
        return self.default if on is None else on

    def gate(self, version: ModelVersion) -> Gate:
        """The version's gate, made on first use and remade when its config changes."""
        key = (version.name, version.label)
        found = self._gates.get(key)
        config = version.config
        if found is not None and found[1] is config:
            return found[0]
        gate = self._build(version)
        self._gates[key] = (gate, config)
        return gate

    async def admit(
        self, version: ModelVersion, request: InferenceRequest, start: float, submit: Submit
    ) -> BatchResult:
        """Queue ``request`` in ``version``'s batcher (``submit``) once the gate admits it.

        Args:
            version: the version the request runs on.
            request: its class and deadline (``timeout_ms`` from ``start``) are read.
            start: when the request arrived (``time.perf_counter``).
            submit: queues the request in the batcher and waits for its rows.

        Raises:
            Overloaded: shed (503, Retry-After).
            RequestTimeout: the deadline passed while waiting for a slot.
            InvalidInput: an unknown ``traffic_class``.
        """
        gate = self.gate(version)
        cls = traffic_class(request)
        if not gate.try_enter(cls):
            left = remaining_ms(request, start)
            await gate.wait(cls, None if left is None else max(left, 0.0) / 1000.0)
        return await self._measured(gate, version, submit)

    async def shadow(self, version: ModelVersion, submit: Submit) -> BatchResult:
        """Queue a shadow copy if the gate has room at once; it never waits.

        Raises:
            Overloaded: the version holds its shadow share of the limit, or others wait.
        """
        gate = self.gate(version)
        if not gate.try_enter(TrafficClass.SHADOW):
            raise gate.shed(TrafficClass.SHADOW, "shadow copies never wait")
        return await self._measured(gate, version, submit)

    async def _measured(self, gate: Gate, version: ModelVersion, submit: Submit) -> BatchResult:
        began = self._clock()
        try:
            result = await submit()
        except RequestTimeout:
            spent = self._clock() - began
            gate.leave(spent, spent)  # timed out in the queue: the strongest sign of one
            raise
        except BaseException:
            gate.leave(None)
            raise
        gate.leave(self._clock() - began, _queued_s(version, result[1].wait_time_ms))
        return result

    def _build(self, version: ModelVersion) -> Gate:
        config = version.config
        section: OverloadConfig = config.overload
        floor = section.min_limit or max(config.max_batch_size, 1) * config.instances.min
        high = section.max_limit or config.batching.max_queue_size + floor
        floor = min(floor, high)
        bounds = LimitBounds(
            initial=min(2 * floor, high), low=floor, high=high, tolerance=section.tolerance,
            window_s=section.window_ms / 1000.0,
        )  # fmt: skip
        m, labels = self.metrics, (version.name, version.label)
        gauges = (m.limit.labels(*labels), m.in_flight.labels(*labels), m.waiting.labels(*labels))
        shed = {c: m.shed.labels(version.name, c.name.lower()) for c in TrafficClass}
        return Gate(version.name, version.label, section, bounds, self._clock, gauges, shed)


def _queued_s(version: ModelVersion, wait_ms: float) -> float:
    """Seconds of a request's batcher wait spent queued behind others: the wait for company
    the model asks for (``max_queue_delay_ms``) is part of its no-load latency."""
    company = version.config.batching.max_queue_delay_ms if version.config.batching_enabled else 0
    return max(wait_ms - company, 0.0) / 1000.0
