"""The traffic policy: the one place the serving path asks which version serves a request.

    TrafficPolicy ── live: model -> _Live (a running experiment: splitter, tallies, unit rule)
         │                 refreshed from the registry when its revision moves
         ├── answered(): an answered routed request: its latency appended to its arm's list,
         │               its arm named in the response, a sampled exposure kept
         └── tick(): folds the latency lists into the tallies; every ``flush_s`` each process
                     upserts its cumulative tallies and the sampled exposures, and stops
                     experiments past their maximum duration

Routing reads memory only: the data plane looks the model up in ``live`` itself (one dict
test with no experiment or rollout anywhere) and calls the arm's ``route``; :meth:`route` is
the same lookup for the other callers (the generative routes). A request that names a version
is never routed. A routed request is tallied per variant (count, errors, latency sums, a
reservoir) and, at the spec's sample rate, kept in a bounded exposure buffer (dropped and
counted when full); both reach the registry in the next flush, never one write per request.

Canary rollouts route through the same call: :class:`~inferd.traffic.canary.CanaryTraffic`
adds a running rollout's model to ``live`` (a model has an experiment or a rollout, never
both), and its per-step tallies are flushed with the experiments'.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from inferd.registry.outage import OutageLog, poll
from inferd.stats import Aggregate
from inferd.traffic.canary import CanaryBatch, CanaryLive, CanaryTraffic
from inferd.traffic.experiments import Clock, ExperimentService
from inferd.traffic.rollout_store import RolloutStore
from inferd.traffic.route import Route
from inferd.traffic.router import Splitter
from inferd.traffic.shadow import ShadowMirror
from inferd.traffic.store import ExperimentRecord, ExperimentStore
from inferd.types import InferenceRequest, InferenceResponse

logger = logging.getLogger(__name__)

FALLBACK = "(fallback)"  # the tally of requests without a unit id, left out of the statistics
MAX_PENDING_EXPOSURES = 50_000
SEEN_UNITS = 16_384  # units whose variant an experiment remembers (~2 MB), then starts over
# An exposure waiting for the flush: (experiment, request id, unit, variant, status,
# latency_ms, seconds since the epoch).
Pending = tuple[str, str | None, str | None, str, int, float, float]
# What one flush writes: experiment -> variant -> tally dict, the pending exposures, and the
# rollouts' changed per-step tallies.
Batch = tuple[dict[str, dict[str, dict[str, Any]]], list[Pending], CanaryBatch]
__all__ = ["Route", "TrafficPolicy"]


class _Live:
    """A running experiment as the serving path needs it."""

    def __init__(
        self, record: ExperimentRecord, tallies: dict[str, Aggregate],
        answers: dict[str, list[float]],
    ) -> None:  # fmt: skip
        spec = record.spec
        self.record = record
        self.splitter = Splitter(record.salt, spec.variant_names, record.weights)
        self.versions = {v.name: str(v.version) for v in spec.variants}
        self.tallies = tallies
        self.kind = spec.unit.kind
        self.key = spec.unit.key or ("session_id" if self.kind == "session" else "")
        fallback = spec.fallback_index()
        self.fallback = None if fallback is None else spec.variant_names[fallback]
        self.sample_rate = spec.exposure_sample_rate
        # One route per variant, shared by its requests (inferd.traffic.route); a fallback
        # request counts in the FALLBACK tally, out of the statistics.
        self.routes = {
            name: Route(self.versions[name], record.id, name, tallies[name],
                        answers=answers[name])
            for name in spec.variant_names
        }  # fmt: skip
        self.fallback_route = None if self.fallback is None else Route(
            self.versions[self.fallback], record.id, self.fallback, tallies[FALLBACK],
            answers=answers[FALLBACK],
        )  # fmt: skip
        # unit -> variant of units seen lately: a returning user skips the hash (the table
        # never changes while this _Live exists: a weight change builds a new one).
        self._seen: dict[str, str] = {}

    def unit(self, request: InferenceRequest, headers: Mapping[str, str] | None) -> str | None:
        kind = self.kind
        if kind == "user_id":
            return request.routing_key
        if kind == "session":
            value = request.parameters.get(self.key)
            return None if value is None or isinstance(value, bool) else str(value)
        if kind == "header":
            return headers.get(self.key) if headers is not None else None
        return request.id or uuid.uuid4().hex  # per request: each request is its own unit

    def route(self, request: InferenceRequest, headers: Mapping[str, str] | None) -> Route | None:
        unit = request.routing_key if self.kind == "user_id" else self.unit(request, headers)
        if not unit:  # no unit id (None or empty)
            return self.fallback_route
        variant = self._seen.get(unit)
        if variant is None:
            variant = self.splitter.variant(unit)
            if self.kind != "request":  # a request id never comes back
                if len(self._seen) >= SEEN_UNITS:
                    self._seen.clear()
                self._seen[unit] = variant
        route = self.routes[variant]
        # A sample of routed requests (each a row): joins outcomes posted by request id, and
        # its distinct units per variant are what the sample-ratio-mismatch check counts.
        rate = self.sample_rate
        if rate >= 1.0 or (rate > 0.0 and random.random() < rate):
            return Route(route.version, route.experiment, variant, route.tally, unit, True,
                         route.answers)  # fmt: skip
        return route


class TrafficPolicy:
    """Experiment routing and exposure accounting of one server process.

    Args:
        store: the experiment tables; None routes nothing (tests, tools).
        clock: seconds since the epoch, for flushes and maximum durations.
        flush_s: how often tallies and exposures are written to the registry.
        source: this process's name in the aggregate rows (unique per process start).
        shadow: shadow traffic; the data plane offers it each answered request while
            ``shadow.targets`` is not empty (a fresh, empty mirror by default).
        rollouts: the rollout tables; by default those of the experiments' registry.
    """

    def __init__(
        self, store: ExperimentStore | None, *, clock: Clock = time.time, flush_s: float = 5.0,
        source: str | None = None, shadow: ShadowMirror | None = None,
        rollouts: RolloutStore | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        if rollouts is None and store is not None:
            rollouts = RolloutStore(store.registry)
        self.canary = CanaryTraffic(rollouts)
        self.shadow = shadow if shadow is not None else ShadowMirror()
        self.clock = clock
        self.flush_s = flush_s
        self.source = source or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.live: dict[str, _Live | CanaryLive] = {}
        self.header_keys: frozenset[str] = frozenset()
        self.dropped_exposures = 0
        self._tallies: dict[str, dict[str, Aggregate]] = {}
        # experiment -> variant -> latencies of answered requests waiting for fold()
        self._answers: dict[str, dict[str, list[float]]] = {}
        self._flushed: dict[str, int] = {}
        self._exposures: list[Pending] = []
        self._revision = -1
        self._last_flush = clock()
        self._service = ExperimentService(store, clock=clock) if store is not None else None

    # -- the serving path --------------------------------------------------------------------

    def route(
        self, request: InferenceRequest, headers: Mapping[str, str] | None = None
    ) -> Route | None:
        """The version and arm for ``request``; None when no experiment or rollout applies."""
        live = self.live.get(request.model_name)
        if live is None or request.model_version is not None:
            return None
        return live.route(request, headers)

    def record(
        self, route: Route, request: InferenceRequest, status: int, latency_ms: float
    ) -> None:
        """Count a routed request once it is answered (or failed)."""
        route.count(status, latency_ms)
        if route.logged:
            self._log(route, request, status, latency_ms)

    def answered(
        self, route: Route, request: InferenceRequest, response: InferenceResponse
    ) -> None:
        """Count a routed request answered with ``response`` and name its arm in it: what
        :meth:`record` (status 200, which fails on no arm) and ``route.annotate`` do, in one
        call on the serving path."""
        answers = route.answers
        if answers is not None:  # an append here; the tally's arithmetic in fold()
            answers.append(response.latency_ms)
        else:
            route.tally.add(response.latency_ms)
        route.annotate(response)
        if route.logged:
            self._log(route, request, 200, response.latency_ms)

    def _log(self, route: Route, request: InferenceRequest, status: int, latency_ms: float) -> None:
        if len(self._exposures) >= MAX_PENDING_EXPOSURES:
            self.dropped_exposures += 1
            return
        # A tuple now; the Exposure (and its datetime) is made by the writing thread.
        self._exposures.append((route.experiment, request.id, route.unit, route.variant,
                                status, latency_ms, self.clock()))  # fmt: skip

    # -- refresh and flush -------------------------------------------------------------------

    def refresh(self) -> None:
        """Rebuild the routing state from the registry (blocking: call it in a thread)."""
        if self.store is None:
            return
        revision = self.store.registry.revision()
        live: dict[str, _Live | CanaryLive] = {}
        for record in self.store.find(states=["running"]):
            names = [*record.spec.variant_names, FALLBACK]
            tallies = self._tallies.setdefault(record.id, {})
            answers = self._answers.setdefault(record.id, {})
            for name in names:
                tallies.setdefault(name, Aggregate())
                answers.setdefault(name, [])
            live[record.model] = _Live(record, tallies, answers)
        for model, canary in self.canary.refresh().items():
            live.setdefault(model, canary)  # creating either refuses while the other runs
        self.live = live
        self.header_keys = frozenset(x.key for x in live.values() if x.kind == "header")
        self._revision = revision

    def flush(self) -> None:
        """Write changed tallies and pending exposures (blocking; call :meth:`collect` on
        the event loop and :meth:`write` in a thread to keep them off the loop)."""
        self.write(self.collect())

    def fold(self) -> None:
        """Add the latencies buffered by :meth:`answered` to their tallies (about once a
        second, from :meth:`tick`, and before every flush). On the thread that records
        requests, like the appends: none is lost between the fold and the clear."""
        for exp_id, arms in list(self._answers.items()):
            tallies = self._tallies[exp_id]
            for name, values in list(arms.items()):
                if values:
                    tallies[name].add_many(values)
                    values.clear()

    def collect(self) -> Batch:
        """Snapshot what to write. On the thread that records requests: a tally is never
        read halfway through an ``add``."""
        self.fold()
        pending, self._exposures = self._exposures, []
        tallies = {}
        for exp_id, found in self._tallies.items():
            total = sum(t.count for t in found.values())
            if total != self._flushed.get(exp_id, 0):
                tallies[exp_id] = {name: t.to_dict() for name, t in found.items() if t.count}
                self._flushed[exp_id] = total
        return tallies, pending, self.canary.collect()

    def write(self, batch: Batch) -> None:
        """Upsert the tallies and append the exposures of a :meth:`collect` (blocking)."""
        if self.store is None:
            return
        tallies, pending, canary = batch
        now = datetime.fromtimestamp(self.clock(), UTC)
        self.canary.write(canary, self.source, now)
        for exp_id, data in tallies.items():
            self.store.save_aggregates(exp_id, self.source, data, now)
        self.store.add_exposure_rows([
            (*row[:6], datetime.fromtimestamp(row[6], UTC)) for row in pending
        ])  # fmt: skip

    def pending_variant(self, exp_id: str, request_ids: Iterable[str]) -> dict[str, str]:
        """Request id -> variant for exposures of this process not yet flushed."""
        wanted = set(request_ids)
        return {
            request_id: variant
            for x, request_id, _, variant, *_ in list(self._exposures)
            if x == exp_id and request_id in wanted
        }

    async def tick(self) -> None:
        """Fold the buffered latencies; refresh when the revision moved; flush and expire when
        ``flush_s`` has passed."""
        self.fold()  # first: it bounds the buffers even while the registry is unreachable
        if self.store is None or self._service is None:
            return
        if await asyncio.to_thread(self.store.registry.revision) != self._revision:
            await asyncio.to_thread(self.refresh)
        if self.clock() - self._last_flush < self.flush_s:
            return
        self._last_flush = self.clock()
        await self._flush()
        records = [x.record for x in self.live.values() if isinstance(x, _Live)]
        if await asyncio.to_thread(self._service.expire_overdue, records):
            await asyncio.to_thread(self.refresh)

    async def _flush(self) -> None:
        batch = self.collect()
        try:
            await asyncio.to_thread(self.write, batch)
        except BaseException:
            # Written next time: the tallies are cumulative, the exposures go back in line.
            self._flushed.clear()
            self.canary.unflushed()
            self._exposures[:0] = batch[1][: max(MAX_PENDING_EXPOSURES - len(self._exposures), 0)]
            raise

    async def run(self, poll_s: float) -> None:
        """Tick every ``poll_s`` until cancelled (then :meth:`close` writes what is left)."""
        outage = OutageLog(logger, "experiments not refreshed or flushed")
        await poll(self.tick, poll_s, outage, "experiment refresh or flush failed",
                   wait_first=True)  # fmt: skip

    async def close(self) -> None:
        """Flush once more; call it after the last request was answered."""
        try:
            await self._flush()
        except Exception:
            logger.exception("last experiment flush failed; up to %.0f s of tallies lost",
                             self.flush_s)  # fmt: skip
