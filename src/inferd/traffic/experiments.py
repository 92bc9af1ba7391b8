"""The lifecycle of A/B/n experiments: create, start, pause, resume, conclude, stop.

    draft ──start──> running ──pause──> paused ──resume──> running
      │                 │                  │
      └──stop──> stopped <──stop───────────┘        running | paused ──conclude──> concluded

Only a running experiment routes traffic; paused, concluded and stopped ones leave the model
to its default version. Concluding with a winner promotes the winner's version through the
management plane's promotion (it loads and warms the version, the model's gates apply, the
audit log records it) before the experiment is marked concluded, so a refused promotion
leaves the experiment as it was. An experiment running past its ``max_duration_s`` is stopped
by whichever process notices first (a conditional update: exactly one succeeds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from inferd.errors import Conflict, ExperimentNotFound, InvalidInput
from inferd.registry import Registry
from inferd.traffic.rollout_store import ACTIVE, RolloutStore
from inferd.traffic.router import check_weights
from inferd.traffic.spec import parse_spec
from inferd.traffic.store import ExperimentRecord, ExperimentStore

Clock = Callable[[], float]
Promote = Callable[[str, int, str], Awaitable[Any]]
Preload = Callable[[str, int], Awaitable[Any]]
STATES = ("draft", "running", "paused", "concluded", "stopped")
SYSTEM_ACTOR = "inferd"


class ExperimentService:
    """Experiment definitions and their lifecycle (blocking store calls run in a thread).

    Args:
        store: the experiment tables.
        promote: promotes a version (``ManagementPlane.promote``); None refuses winners.
        preload: loads and warms a version before traffic moves to it; None skips it.
        clock: seconds since the epoch (tests pass a fake one).
    """

    def __init__(
        self, store: ExperimentStore, promote: Promote | None = None,
        preload: Preload | None = None, clock: Clock = time.time,
    ) -> None:  # fmt: skip
        self.store = store
        self.promote = promote
        self.preload = preload
        self.clock = clock

    @property
    def registry(self) -> Registry:
        return self.store.registry

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    # -- definitions ---------------------------------------------------------------------------

    async def create(self, body: Any, actor: str = "") -> ExperimentRecord:
        """Validate and store a draft.

        Raises:
            InvalidInput: a bad field, or a variant naming a version the model does not have.
            ModelNotFound: the model is not registered.
        """
        spec = parse_spec(body)
        versions = {v.version for v in await self._call(self.registry.list_versions, spec.model)}
        for index, variant in enumerate(spec.variants):
            if variant.version not in versions:
                raise InvalidInput(
                    f"experiment.variants[{index}].version",
                    f"a version of model '{spec.model}' ({sorted(versions)})",
                    str(variant.version),
                )
        record: ExperimentRecord = await self._call(self.store.create, spec, actor, self.now())
        return record

    async def get(self, exp_id: str) -> ExperimentRecord:
        record: ExperimentRecord = await self._call(self.store.get, exp_id)
        return record

    async def find(
        self, model: str | None = None, state: str | None = None
    ) -> list[ExperimentRecord]:
        if state is not None and state not in STATES:
            raise InvalidInput("state", " | ".join(STATES), repr(state))
        states = [state] if state is not None else None
        records: list[ExperimentRecord] = await self._call(self.store.find, model, states)
        return records

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, exp_id: str, actor: str = "") -> ExperimentRecord:
        """draft -> running, after every variant's version loaded here (when it can)."""
        record = await self.get(exp_id)
        if record.state != "draft":
            await self._move(exp_id, ["draft"], "running", actor)  # raises the clear Conflict
        running = await self.find(record.model, "running")
        if running:
            raise Conflict(
                f"model '{record.model}' already runs experiment '{running[0].id}'; pause, "
                "conclude or stop it first (one experiment per model at a time)"
            )
        await self._no_rollout(record.model)
        if self.preload is not None:
            for variant in record.spec.variants:
                await self.preload(record.model, variant.version)
        return await self._move(exp_id, ["draft"], "running", actor, started_at=self.now())

    async def pause(self, exp_id: str, actor: str = "") -> ExperimentRecord:
        return await self._move(exp_id, ["running"], "paused", actor)

    async def resume(self, exp_id: str, actor: str = "") -> ExperimentRecord:
        record = await self.get(exp_id)
        others = [r for r in await self.find(record.model, "running") if r.id != exp_id]
        if others:
            raise Conflict(f"model '{record.model}' already runs experiment '{others[0].id}'")
        await self._no_rollout(record.model)
        return await self._move(exp_id, ["paused"], "running", actor)

    async def stop(self, exp_id: str, actor: str = "", reason: str = "") -> ExperimentRecord:
        return await self._move(exp_id, ["draft", "running", "paused"], "stopped", actor,
                                reason=reason or "stopped", ended_at=self.now())  # fmt: skip

    async def conclude(
        self, exp_id: str, winner: str | None, actor: str = "", reason: str = ""
    ) -> ExperimentRecord:
        """running | paused -> concluded; a winner's version is promoted first.

        Raises:
            InvalidInput: ``winner`` is not a variant. Conflict: wrong state.
            PromotionRefused: a gate refuses the winner (the experiment stays as it was).
        """
        record = await self.get(exp_id)
        if record.state not in ("running", "paused"):
            await self._move(exp_id, ["running", "paused"], "concluded", actor)
        if winner is not None:
            names = record.spec.variant_names
            if winner not in names:
                raise InvalidInput("winner", f"one of the variants {names}", repr(winner))
            if self.promote is None:
                raise Conflict("this process cannot promote versions; conclude through a server")
            version = record.spec.variants[names.index(winner)].version
            await self.promote(record.model, version, actor)
        return await self._move(
            exp_id, ["running", "paused"], "concluded", actor, winner=winner,
            reason=reason or (f"winner {winner}" if winner else "no winner"), ended_at=self.now(),
        )  # fmt: skip

    async def set_weights(self, exp_id: str, weights: Any, actor: str = "") -> ExperimentRecord:
        """Change the weights; units move as little as the new weights allow."""
        record = await self.get(exp_id)
        if not isinstance(weights, list) or len(weights) != len(record.spec.variants):
            raise InvalidInput(
                "weights", f"{len(record.spec.variants)} numbers", repr(weights)[:80]
            )
        if any(isinstance(w, bool) or not isinstance(w, int | float) for w in weights):
            raise InvalidInput("weights", "numbers between 0 and 1", repr(weights)[:80])
        values = check_weights(weights, "weights")
        result: ExperimentRecord = await self._call(
            self.store.set_weights, exp_id, values, actor, self.now()
        )
        return result

    def expire_overdue(self, records: list[ExperimentRecord] | None = None) -> list[str]:
        """Stop running experiments past their maximum duration (blocking); returns their ids.

        Args:
            records: the running experiments as a process holds them; None reads them.
        """
        now = self.clock()
        stopped = []
        for record in self.store.find(states=["running"]) if records is None else records:
            started = record.started_at.timestamp() if record.started_at else now
            if record.state != "running" or now - started < record.spec.max_duration_s:
                continue
            reason = f"maximum duration of {record.spec.max_duration_s:g} s reached"
            try:
                self.store.transition(record.id, ["running"], "stopped", SYSTEM_ACTOR,
                                      self.now(), reason=reason, ended_at=self.now())  # fmt: skip
                stopped.append(record.id)
            except (Conflict, ExperimentNotFound):
                pass  # another process stopped it first
        return stopped

    async def _no_rollout(self, model: str) -> None:
        rollouts = await self._call(RolloutStore(self.registry).find, model, ACTIVE)
        if rollouts:
            raise Conflict(
                f"model '{model}' has rollout '{rollouts[0].id}' in progress; abort it or let "
                "it finish first (an experiment and a rollout would both route its traffic)"
            )

    async def _move(
        self, exp_id: str, allowed: list[str], target: str, actor: str, **values: Any
    ) -> ExperimentRecord:
        record: ExperimentRecord = await self._call(
            self.store.transition, exp_id, allowed, target, actor, self.now(), **values
        )
        return record
