"""Canary rollouts: the state machine, its decisions, and the service that applies them.

    pending ──start──> running ──pause──> paused ──resume──> running
       │                 │  ▲               │
       │                 │  └──advance──────┤ (next step; the last one completes)
       │                 ├──breach──> rolled_back <──breach──┤
       │                 ├──last step done──> completed (candidate promoted)
       └──abort──> aborted <──abort────────────────────────┘

A running or paused rollout routes its step's share of the model's unversioned requests to
the candidate (``inferd.traffic.canary``); any other state routes none. :func:`decide` is
pure: given a rollout, both arms' stats over the current step and the time, it says hold,
advance, complete or roll back. Guardrails are checked while paused too (the canary still
serves). The leader's controller calls :meth:`RolloutService.apply`; operators call the
actions; both go through one conditional update, so only one of them wins a race.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from inferd.errors import (
    Conflict,
    InferdError,
    InvalidInput,
    PromotionRefused,
    RegistryUnavailable,
)
from inferd.events import EventBus, TrafficEvent
from inferd.registry.records import Stage
from inferd.traffic.guardrails import ArmStats, evaluate, window
from inferd.traffic.rollout_spec import parse_rollout_spec
from inferd.traffic.rollout_store import ACTIVE, ROUTING, RolloutRecord, RolloutStore
from inferd.traffic.store import ExperimentStore

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Promote = Callable[[str, int, str], Awaitable[Any]]
Preload = Callable[[str, int], Awaitable[Any]]
STATES = ("pending", "running", "paused", "rolled_back", "completed", "aborted")
SYSTEM_ACTOR = "inferd-rollouts"
KEEP_EVENTS = 1000  # the default bus's ``recent``: the latest changes, for tests and debugging


@dataclass(frozen=True, slots=True)
class Decision:
    """What the controller does with a rollout now."""

    action: Literal["hold", "advance", "complete", "rollback"]
    breaches: list[dict[str, Any]] = field(default_factory=list)
    wait_s: float = 0.0  # until the step's minimum duration is met
    requests_needed: int = 0  # canary requests the step still needs


def decide(record: RolloutRecord, stats: Mapping[str, ArmStats], now: float) -> Decision:
    """Hold, advance, complete or roll back ``record`` given its arms over the current step."""
    if record.state not in ROUTING:
        return Decision("hold")
    canary, baseline = stats["canary"], stats["baseline"]
    breaches = evaluate(record.spec.guardrails, canary, baseline)
    if breaches:
        return Decision("rollback", breaches)
    step = record.spec.steps[record.step]
    # Only running time counts toward the minimum: a paused step has not been watched at its
    # share the way the minimum means (an operator paused it because something looked wrong).
    wait = max(step.min_duration_s - record.step_active_s(now), 0.0)
    needed = max(step.min_requests - canary.requests, 0)
    if record.state == "paused" or wait > 0 or needed > 0:
        return Decision("hold", wait_s=wait, requests_needed=needed)
    last = record.step == len(record.spec.steps) - 1
    return Decision("complete" if last else "advance")


class RolloutService:
    """Rollout definitions, operator actions and the controller's decisions.

    Args:
        store: the rollout tables.
        promote: promotes a version (``ManagementPlane.promote``: loads, gates, audit);
            None completes without promoting (tools, tests).
        preload: loads and warms a version before traffic moves to it; None skips it.
        clock: seconds since the epoch (tests pass a fake one).
        events: where changes made here are published.
    """

    def __init__(
        self, store: RolloutStore, promote: Promote | None = None,
        preload: Preload | None = None, clock: Clock = time.time,
        events: EventBus[TrafficEvent] | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.promote = promote
        self.preload = preload
        self.clock = clock
        self.events: EventBus[TrafficEvent] = events or EventBus(keep=KEEP_EVENTS)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    # -- definitions -----------------------------------------------------------------------

    async def create(self, body: Any, actor: str = "") -> RolloutRecord:
        """Validate and store a pending rollout (the controller starts it at its next tick).

        Raises:
            InvalidInput: a bad field, or a version the model does not have.
            ModelNotFound: no such model. Conflict: another rollout or an experiment runs.
        """
        spec = parse_rollout_spec(body)
        registry = self.store.registry
        versions = await self._call(registry.list_versions, spec.model)
        known = sorted(v.version for v in versions)
        production = [v.version for v in versions if v.stage is Stage.PRODUCTION]
        baseline = spec.baseline if spec.baseline is not None else next(iter(production), None)
        if baseline is None:
            expected = f"a version of '{spec.model}' ({known}); it has no production version"
            raise InvalidInput("rollout.baseline", expected, "nothing")
        for name, version in (("candidate", spec.candidate), ("baseline", baseline)):
            if version not in known:
                raise InvalidInput(f"rollout.{name}", f"a version of model '{spec.model}' "
                                   f"({known})", str(version))  # fmt: skip
        if baseline == spec.candidate:
            raise InvalidInput("rollout.candidate", f"a version other than the baseline "
                               f"(v{baseline})", str(spec.candidate))  # fmt: skip
        running = await self._call(ExperimentStore(registry).find, spec.model, ["running"])
        if running:
            raise Conflict(f"model '{spec.model}' runs experiment '{running[0].id}'; stop it "
                           "before a rollout (both would route its traffic)")  # fmt: skip
        record: RolloutRecord = await self._call(
            self.store.create, spec, baseline, actor, self.now()
        )
        return record

    async def get(self, rollout_id: str) -> RolloutRecord:
        record: RolloutRecord = await self._call(self.store.get, rollout_id)
        return record

    async def find(self, model: str | None = None, state: str | None = None) -> list[RolloutRecord]:
        if state is not None and state not in STATES:
            raise InvalidInput("state", " | ".join(STATES), repr(state))
        states = [state] if state is not None else None
        records: list[RolloutRecord] = await self._call(self.store.find, model, states)
        return records

    # -- actions -----------------------------------------------------------------------------

    async def start(self, rollout_id: str, actor: str = SYSTEM_ACTOR) -> RolloutRecord:
        """pending -> running at the first step, once the candidate loaded here (aborted,
        with the reason, if it cannot load)."""
        record = await self.get(rollout_id)
        if record.state == "pending" and self.preload is not None:
            try:
                await self.preload(record.model, record.candidate)
            except RegistryUnavailable:
                raise  # nothing wrong with the candidate: the next tick tries again
            except InferdError as err:  # a candidate that cannot load never takes traffic
                return await self._move(record, ["pending"], "aborted", actor, "aborted",
                                        reason=f"candidate failed to load: {err.message}",
                                        ended_at=self.now())  # fmt: skip
        return await self._move(record, ["pending"], "running", actor, "started", step=0,
                                started_at=self.now())  # fmt: skip

    async def pause(self, rollout_id: str, actor: str = "") -> RolloutRecord:
        """Stop advancing; the canary keeps its share and its guardrails."""
        return await self._move(await self.get(rollout_id), ["running"], "paused", actor,
                                "paused")  # fmt: skip

    async def resume(self, rollout_id: str, actor: str = "") -> RolloutRecord:
        return await self._move(await self.get(rollout_id), ["paused"], "running", actor,
                                "resumed")  # fmt: skip

    async def abort(self, rollout_id: str, actor: str = "", reason: str = "") -> RolloutRecord:
        """End it without promoting: the canary's share goes to 0."""
        return await self._move(await self.get(rollout_id), list(ACTIVE), "aborted", actor,
                                "aborted", reason=reason or "aborted by an operator",
                                ended_at=self.now())  # fmt: skip

    async def advance(
        self, rollout_id: str, actor: str = "", expect_step: int | None = None
    ) -> RolloutRecord:
        """The next step now (in the same state); at the last step, complete (promote)."""
        record = await self.get(rollout_id)
        if record.state in ROUTING and record.step == len(record.spec.steps) - 1:
            return await self.complete(record, actor)
        step = record.step + 1 if expect_step is None else expect_step + 1
        return await self._move(record, list(ROUTING), record.state, actor, "advanced",
                                step=step, expect_step=step - 1)  # fmt: skip

    async def rollback(
        self, record: RolloutRecord, breaches: list[dict[str, Any]], actor: str = SYSTEM_ACTOR
    ) -> RolloutRecord:
        """Send the canary's share to 0 and record why."""
        reason = "; ".join(b["message"] for b in breaches)
        return await self._move(record, list(ROUTING), "rolled_back", actor, "rolled_back",
                                expect_step=record.step, reason=reason, breach=breaches,
                                ended_at=self.now(), extra={"breaches": breaches})  # fmt: skip

    async def complete(self, record: RolloutRecord, actor: str = SYSTEM_ACTOR) -> RolloutRecord:
        """Promote the candidate (gates apply), then mark the rollout completed.

        Raises:
            PromotionRefused: a gate refused; the rollout is paused with the reason.
        """
        if record.spec.promote and self.promote is not None:
            try:
                await self.promote(record.model, record.candidate, actor)
            except PromotionRefused as err:
                await self._move(record, list(ROUTING), "paused", actor, "promotion_refused",
                                 reason=err.message)  # fmt: skip
                raise
        return await self._move(record, list(ROUTING), "completed", actor, "completed",
                                expect_step=record.step, ended_at=self.now(),
                                reason="candidate promoted" if record.spec.promote
                                else "completed without promotion")  # fmt: skip

    # -- the controller's view ---------------------------------------------------------------

    async def window(self, record: RolloutRecord) -> dict[str, ArmStats]:
        """Both arms' stats over the current step, merged across every process."""
        rows = await self._call(self.store.aggregates, record.id, record.step)
        return window(rows)

    async def apply(self, record: RolloutRecord) -> Decision:
        """Decide on ``record`` and carry the decision out (the leader's controller)."""
        if record.state == "pending":
            started = await self.start(record.id)
            return Decision("advance" if started.state == "running" else "hold")
        decision = decide(record, await self.window(record), self.clock())
        if decision.action == "rollback":
            await self.rollback(record, decision.breaches)
        elif decision.action == "advance":
            await self.advance(record.id, SYSTEM_ACTOR, expect_step=record.step)
        elif decision.action == "complete":
            await self.complete(record)
        return decision

    async def _move(
        self, record: RolloutRecord, allowed: list[str], target: str, actor: str, event: str,
        *, step: int | None = None, expect_step: int | None = None,
        extra: dict[str, Any] | None = None, **values: Any,
    ) -> RolloutRecord:  # fmt: skip
        entry: dict[str, Any] = {"event": event, **(extra or {})}
        if step is not None:
            entry.update(step=step, percent=record.spec.steps[step].percent)
        if "reason" in values:
            entry["reason"] = values["reason"]
        moved: RolloutRecord = await self._call(
            self.store.transition, record.id, allowed, target, actor, self.now(), entry,
            step=step, expect_step=expect_step, **values,
        )  # fmt: skip
        detail = {k: v for k, v in entry.items() if k != "event"}
        change = TrafficEvent(f"rollout.{event}", moved.id, moved.model, self.clock(),
                              {"actor": actor or "anonymous", **detail})  # fmt: skip
        level = logging.WARNING if event == "rolled_back" else logging.INFO
        logger.log(level, "%s %s (%s) %s", change.kind, change.rollout, change.model, change.detail)
        self.events.publish(change)
        return moved
