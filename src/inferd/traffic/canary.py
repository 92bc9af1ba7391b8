"""Canary routing and per-step tallies of one server process.

    CanaryTraffic ── refresh(): model -> CanaryLive for each running or paused rollout
         │           (the traffic policy merges them into its ``live`` table)
         └── collect() / write(): every flush, each (rollout, step) whose tallies changed is
                                  upserted as this process's cumulative row per arm

A rollout's share is routed with the experiments' :class:`~inferd.traffic.router.Splitter`
(variants ``baseline`` and ``canary``, weight history = the share at each step), so a unit
that reached the canary at 1 % stays there at 5 %. Requests without a unit id (or all, with
no ``unit`` in the spec) are routed on their own by a uniform draw at the step's share.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import numpy as np

from inferd.stats import Aggregate
from inferd.traffic.rollout_store import ROUTING, RolloutRecord, RolloutStore
from inferd.traffic.route import Route
from inferd.traffic.router import Splitter
from inferd.types import InferenceRequest, InferenceResponse

logger = logging.getLogger(__name__)

ARMS = ("baseline", "canary")
# What one flush writes: (rollout id, step, arm -> {"latency": ..., "prediction": ...}).
CanaryBatch = list[tuple[str, int, dict[str, Any]]]


@dataclass(slots=True)
class Tally:
    """One arm of one step in this process."""

    latency: Aggregate = field(default_factory=Aggregate)
    prediction: Aggregate = field(default_factory=Aggregate)


@dataclass(slots=True)
class CanaryRoute(Route):
    """A request routed by a rollout: ``experiment`` is the rollout id, ``variant`` the arm."""

    ARM_HEADER: ClassVar[bytes] = b"inferd-rollout-arm"

    prediction: Aggregate = field(default_factory=Aggregate)

    def count(self, status: int, latency_ms: float) -> None:
        # Only server-side failures count against a version: a bad body fails on either arm.
        self.tally.add(latency_ms, status >= 500)

    def annotate(self, response: InferenceResponse) -> None:
        """Name the rollout and arm, and sample the answer's mean for the shift guardrail."""
        parameters = response.parameters
        parameters["rollout_id"] = self.experiment
        parameters["rollout_arm"] = self.variant
        response.headers = self.headers
        for array in response.outputs.values():
            if array.size and array.dtype.kind in "biuf":
                # add.reduce: ~2 us on a small array where np.mean takes ~5 (per request)
                self.prediction.add(float(np.add.reduce(array, axis=None)) / array.size)
            break


class CanaryLive:
    """A routing rollout as the serving path needs it."""

    def __init__(self, record: RolloutRecord, tallies: Mapping[str, Tally]) -> None:
        self.record = record
        self.tallies = tallies
        self.share = record.percent / 100.0
        history = [[1.0 - p / 100.0, p / 100.0] for p in record.percents]
        self.splitter = Splitter(record.salt, ARMS, history)
        self.versions = {"baseline": str(record.baseline), "canary": str(record.candidate)}
        # One route per arm, shared by the requests it serves (rollouts log no exposures).
        self.routes = {
            arm: CanaryRoute(self.versions[arm], record.id, arm, tallies[arm].latency,
                             prediction=tallies[arm].prediction)
            for arm in ARMS
        }  # fmt: skip
        unit = record.spec.unit
        self.kind = unit.kind if unit is not None else "request"
        self.key = (unit.key if unit is not None else None) or (
            "session_id" if self.kind == "session" else ""
        )

    def _unit(self, request: InferenceRequest, headers: Mapping[str, str] | None) -> str | None:
        if self.kind == "user_id":
            return request.routing_key
        if self.kind == "session":
            value = request.parameters.get(self.key)
            return None if value is None or isinstance(value, bool) else str(value)
        if self.kind == "header":
            return headers.get(self.key) if headers is not None else None
        return None

    def route(self, request: InferenceRequest, headers: Mapping[str, str] | None) -> Route:
        unit = self._unit(request, headers)
        if unit:
            arm = self.splitter.variant(unit)
        else:
            arm = "canary" if random.random() < self.share else "baseline"
        return self.routes[arm]


class CanaryTraffic:
    """The rollouts this process routes, and their tallies.

    Args:
        store: the rollout tables; None routes nothing.

    Attributes:
        observer: called after each refresh with model -> canary share (%) routed now, e.g.
            ``RolloutMetrics.routing``; its failures are logged, never raised.
    """

    def __init__(self, store: RolloutStore | None) -> None:
        self.store = store
        self.observer: Callable[[dict[str, float]], None] | None = None
        self._tallies: dict[tuple[str, int], dict[str, Tally]] = {}
        self._flushed: dict[tuple[str, int], int] = {}

    def refresh(self) -> dict[str, CanaryLive]:
        """Model -> routing rollout, from the registry (blocking: call it in a thread)."""
        if self.store is None:
            return {}
        live: dict[str, CanaryLive] = {}
        for record in self.store.find(states=ROUTING):
            tallies = self._tallies.setdefault((record.id, record.step), {})
            for arm in ARMS:
                tallies.setdefault(arm, Tally())
            live[record.model] = CanaryLive(record, tallies)
        current = {(x.record.id, x.record.step) for x in live.values()}
        for key in [k for k in self._tallies if k not in current]:
            # A past step: dropped once its last counts were flushed (its rows stay).
            if self._flushed.get(key, 0) == sum(
                t.latency.count for t in self._tallies[key].values()
            ):
                del self._tallies[key]
                self._flushed.pop(key, None)
        if self.observer is not None:
            try:
                self.observer({model: x.record.percent for model, x in live.items()})
            except Exception:
                logger.exception("rollout routing observer failed")
        return live

    def collect(self) -> CanaryBatch:
        """Snapshot the tallies that changed since the last flush (on the serving thread)."""
        batch: CanaryBatch = []
        for key, arms in list(self._tallies.items()):  # refresh may add one meanwhile
            total = sum(t.latency.count for t in arms.values())
            if total != self._flushed.get(key, 0):
                data = {arm: {"latency": t.latency.to_dict(), "prediction": t.prediction.to_dict()}
                        for arm, t in arms.items()}  # fmt: skip
                batch.append((key[0], key[1], data))
                self._flushed[key] = total
        return batch

    def write(self, batch: CanaryBatch, source: str, now: datetime) -> None:
        """Upsert a :meth:`collect` (blocking)."""
        if self.store is None:
            return
        for rollout_id, step, data in batch:
            self.store.save_aggregates(rollout_id, step, source, data, now)

    def unflushed(self) -> None:
        """After a failed write: everything is written again next time (rows are cumulative)."""
        self._flushed.clear()
