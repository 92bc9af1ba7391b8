"""Drift detection of served models: the per-process monitor that ties the parts together.

    DriftMonitor ── sampler  (drift_sampler)  the request path's one decision, batches
          │       ├─ store    (drift_store)    settings, profiles, batches, results
          │       ├─ metrics  (drift_metrics)  inferd_drift_* gauges
          │       └─ events   (inferd.events)  in-process hook (alerting subscribes)
          └── tick(): every ``flush_s``: flush this process's samples, refresh which models
                      are watched, claim and run the checks that are due (one process per
                      version and interval, across workers and replicas), publish events,
                      set the gauges from the stored results; a check prunes its version's
                      batches that have left the window

A model is watched when it has stored settings or any version has a reference profile. A
version is checked against its reference profile (from a dataset given at registration, or
built from its first ``reference_requests`` sampled rows) over the window of the last
``window_s`` seconds of sampled rows of every process (:func:`drift_check.merge_batches`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from inferd.events import DriftEvent, EventBus
from inferd.monitoring.drift_check import OUTPUT, DriftSettings, check, merge_batches
from inferd.monitoring.drift_metrics import DriftMetrics
from inferd.monitoring.drift_profile import Profile
from inferd.monitoring.drift_sampler import DriftSampler
from inferd.monitoring.drift_store import DriftStore, window_columns
from inferd.registry.outage import OutageLog, poll

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
LEASE_S = 120.0  # a claimed check not finished by then may be run by another process
PRUNE_MARGIN_S = 60.0  # batches are kept this long past the window (a late flush, a clock skew)
# Rows a process keeps per version between flushes: enough that the window holds about
# WINDOW_SHARE x max_samples rows per process (merge_batches thins them to max_samples), so
# the table stays bounded by the settings, not by traffic.
WINDOW_SHARE = 2.0
MIN_CAPACITY, MAX_CAPACITY = 100, 1_000


def as_array(values: Sequence[Any]) -> np.ndarray[Any, Any]:
    """Stored values as a float array (None -> NaN) when they are numbers, else text."""
    if all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values):
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.asarray(["" if v is None else str(v) for v in values], dtype=object)


def profile_of_rows(
    columns: Mapping[str, Sequence[Any]], categorical: Sequence[str] = ()
) -> Profile:
    """A profile of sampled rows (``output.`` columns are the outputs)."""
    inputs = {n: as_array(v) for n, v in columns.items() if not n.startswith(OUTPUT)}
    outputs = {n.removeprefix(OUTPUT): as_array(v) for n, v in columns.items()
               if n.startswith(OUTPUT)}  # fmt: skip
    return Profile.of(inputs, outputs, categorical)


class DriftMonitor:
    """Sampling, checks, gauges and events of one server process.

    Args:
        store: the drift tables; None disables everything but the in-memory sampler.
        metrics: the registry to add the ``inferd_drift_*`` gauges to; None for none.
        clock: seconds since the epoch.
        flush_s: how often samples are written and due checks looked for.
        seed: seeds sampling and the checks' random draws (tests).
    """

    def __init__(
        self, store: DriftStore | None, metrics: CollectorRegistry | None = None, *,
        clock: Clock = time.time, flush_s: float = 5.0, seed: int | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.clock = clock
        self.flush_s = flush_s
        self.sampler = DriftSampler(store, seed=seed)
        self.events: EventBus[DriftEvent] = EventBus()
        self.metrics = DriftMetrics(metrics) if metrics is not None else None
        self.settings: dict[str, DriftSettings] = {}
        self._profiled: set[tuple[str, int]] = set()
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()  # checks run in threads: a request's and the tick's
        self._last_tick = clock()

    def settings_of(self, model: str) -> DriftSettings:
        """The model's settings (the defaults when none are stored)."""
        return self.settings.get(model) or DriftSettings()

    # -- blocking parts (run in a thread) ------------------------------------------------------

    def refresh(self) -> None:
        """Reload settings and profiles; set which models the sampler samples."""
        if self.store is None:
            return
        stored, profiled = self.store.settings(), self.store.profiled()
        watched = {m for m, _ in profiled} | set(stored)
        self.settings = {m: stored.get(m) or DriftSettings() for m in watched}
        self._profiled = profiled
        self.sampler.rates = {m: s.sample_rate for m, s in self.settings.items()
                              if s.sample_rate > 0}  # fmt: skip
        self.sampler.capacities = {m: self._capacity(s) for m, s in self.settings.items()}

    def _capacity(self, settings: DriftSettings) -> int:
        rows = math.ceil(WINDOW_SHARE * settings.max_samples * self.flush_s / settings.window_s)
        return min(max(rows, MIN_CAPACITY), MAX_CAPACITY)

    def candidates(self, model: str | None = None) -> list[tuple[str, int]]:
        """Versions to check: those with a profile, and sampled ones of models that build
        their reference from traffic."""
        if self.store is None:
            return []
        found = set(self._profiled)
        traffic = [m for m, s in self.settings.items() if s.reference_requests is not None]
        if traffic:
            found |= self.store.sampled_versions(traffic)
        return sorted(x for x in found if model is None or x[0] == model)

    def evaluate(self, model: str, version: int) -> dict[str, Any]:
        """Check one version now and store the result (blocking)."""
        store = self._store()
        settings, now = self.settings_of(model), self.clock()
        found = store.profile(model, version)
        if found is None and settings.reference_requests is not None:
            found = self._reference_from_traffic(model, version, settings)
        head: dict[str, Any] = {"model": model, "version": version, "checked_at": now}
        if found is None:
            status = "no_reference" if settings.reference_requests is None else "collecting"
            result = {**head, "status": status, "drifted": False, "samples": 0, "features": [],
                      "multivariate": None, "reference": None}  # fmt: skip
        else:
            profile, source, created = found
            start = max(datetime.fromtimestamp(now - settings.window_s, UTC), created)
            batches = store.batches(model, version, start)
            rng = self._child_rng()
            columns, seen = merge_batches(window_columns(batches), settings.max_samples, rng)
            seed = int(rng.integers(1 << 31))
            result = {**head, **check(profile, columns, settings, seed)}
            result["window"] = {"start": start.isoformat(), "seen": seen}
            # Batches older than the window are never read again (the index makes it cheap).
            store.prune(model, version, start - timedelta(seconds=PRUNE_MARGIN_S))
            result["reference"] = {"source": source, "rows": profile.rows,
                                   "created_at": created.isoformat()}  # fmt: skip
        store.save_result(model, version, result, now)
        return result

    def _child_rng(self) -> np.random.Generator:
        """A generator of its own for one check (numpy's are not safe to share across
        threads), drawn from the monitor's so a seeded monitor stays reproducible."""
        with self._rng_lock:
            return np.random.default_rng(int(self._rng.integers(1 << 63)))

    def _store(self) -> DriftStore:
        if self.store is None:
            raise RuntimeError("drift monitor: no store (built with store=None)")
        return self.store

    def _reference_from_traffic(
        self, model: str, version: int, settings: DriftSettings
    ) -> tuple[Profile, str, datetime] | None:
        store, wanted = self._store(), settings.reference_requests or 0
        used: list[tuple[int, dict[str, list[Any]]]] = []
        rows, last = 0, datetime.fromtimestamp(0, UTC)
        for at, seen, data in store.batches(model, version, last):
            used.append((seen, data))
            last = at
            rows += max((len(v) for v in data.values()), default=0)
            if rows >= wanted:
                break
        if rows < wanted:
            return None
        columns, _ = merge_batches(used, wanted, self._child_rng())
        profile = profile_of_rows(columns, settings.categorical)
        # Its windows start after the batches it was built from: no row is in both.
        store.put_profile(model, version, profile, "traffic", last + timedelta(microseconds=1))
        self._profiled.add((model, version))
        return store.profile(model, version)

    # -- the loop ------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write this process's samples (so a check sees them)."""
        pending = self.sampler.collect()
        at = datetime.fromtimestamp(self.clock(), UTC)
        await asyncio.to_thread(self.sampler.write, pending, at)

    async def check_now(
        self, model: str, version: int | None = None, refresh: bool = True
    ) -> list[dict[str, Any]]:
        """The results of every candidate version of ``model`` (or one).

        With ``refresh`` every one is checked now (after flushing this process's samples);
        without, a stored result younger than ``check_interval_s`` is answered as it is, so
        a page that polls costs no test.
        """
        if self.store is None:
            return []
        store = self.store
        if refresh:  # first: a version sampled only here becomes a candidate
            await self.flush()
        await asyncio.to_thread(self.refresh)
        versions = [v for m, v in await asyncio.to_thread(self.candidates, model)]
        if version is not None:
            versions = [version]
        stored = await asyncio.to_thread(store.results, model)
        fresh_s = self.settings_of(model).check_interval_s
        results: dict[int, dict[str, Any]] = {}
        for v in versions:
            found = stored.get((model, v))
            if not refresh and found and self.clock() - found.get("checked_at", 0.0) < fresh_s:
                results[v] = found
        due = [v for v in versions if v not in results]
        if due:
            if not refresh:
                await self.flush()
            for v in due:
                results[v] = await self._check(model, v)
            await self._update_metrics()
        return [results[v] for v in versions]

    async def _check(self, model: str, version: int) -> dict[str, Any]:
        stored = await asyncio.to_thread(self._store().results, model)
        previous = stored.get((model, version))
        result = await asyncio.to_thread(self.evaluate, model, version)
        self._publish(model, version, result, bool(previous and previous.get("drifted")))
        return result

    def _publish(self, model: str, version: int, result: dict[str, Any], was: bool) -> None:
        self.events.publish(DriftEvent("checked", model, version, result))
        now = bool(result.get("drifted"))
        if now != was and result.get("status") in ("ok", "drift"):
            self.events.publish(DriftEvent("drift" if now else "resolved", model, version,
                                           result))  # fmt: skip

    async def tick(self) -> None:
        """Flush, refresh, run the checks that are due here, update gauges."""
        if self.store is None:
            return
        store = self.store
        await self.flush()
        await asyncio.to_thread(self.refresh)
        now = self.clock()
        for model, version in await asyncio.to_thread(self.candidates):
            interval = self.settings_of(model).check_interval_s
            if await asyncio.to_thread(store.claim, model, version, now, interval, LEASE_S):
                await self._check(model, version)
        await self._update_metrics()

    async def _update_metrics(self) -> None:
        if self.metrics is not None and self.store is not None:
            self.metrics.update(await asyncio.to_thread(self.store.results))

    async def run(self, poll_s: float | None = None) -> None:
        """Tick every ``poll_s`` (default ``flush_s``) until cancelled."""
        outage = OutageLog(logger, "drift samples not flushed or checked")
        await poll(self.tick, poll_s or self.flush_s, outage, "drift flush or check failed",
                   wait_first=True)  # fmt: skip

    async def close(self) -> None:
        """Write the last samples; call it after the last request was answered."""
        try:
            await self.flush()
        except Exception:
            logger.exception("last drift flush failed; up to %.0f s of samples lost",
                             self.flush_s)  # fmt: skip
