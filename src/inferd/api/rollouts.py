"""REST endpoints of canary rollouts, under ``/v1/rollouts``.

GET   /v1/rollouts[?model=&state=]              list, newest first
POST  /v1/rollouts                              create {"model", "candidate", "steps"?, ...}
GET   /v1/rollouts/{id}                         definition, state, step, share, history
GET   /v1/rollouts/{id}/status                  the step's per-arm metrics, guardrails, next step
POST  /v1/rollouts/{id}/pause|resume|advance    operator actions
POST  /v1/rollouts/{id}/abort                   {"reason"?}: the canary's share goes to 0

Changing needs an operator key, as does reading (the ``/v1`` management group, as for
experiments). Each change refreshes this process's routing at once (others within a poll).
"""

from __future__ import annotations

import asyncio
from typing import Any

from inferd.api._lifecycle import Action, LifecycleRoutes, Reply
from inferd.api._request import optional_text
from inferd.traffic.guardrails import evaluate
from inferd.traffic.policy import TrafficPolicy
from inferd.traffic.rollout_store import RolloutNotFound
from inferd.traffic.rollouts import RolloutService, decide


class RolloutRoutes:
    """Dispatches ``/v1/rollouts...`` to the rollout service."""

    def __init__(self, service: RolloutService, traffic: TrafficPolicy) -> None:
        self.service = service
        self.traffic = traffic
        actions: dict[str, Action] = {
            "pause": lambda i, _, actor: service.pause(i, actor),
            "resume": lambda i, _, actor: service.resume(i, actor),
            "advance": lambda i, _, actor: service.advance(i, actor),
            "abort": lambda i, data, actor: service.abort(
                i, actor, optional_text(data, "reason") or ""
            ),
        }
        self.routes = LifecycleRoutes(
            service, traffic, actions, {"status": self.status}, RolloutNotFound
        )

    async def handle(
        self, method: str, parts: list[str], query: dict[str, str], body: bytes, actor: str
    ) -> Reply:
        """Answer one request; ``parts`` is the path after ``/v1/rollouts``."""
        return await self.routes.handle(method, parts, query, body, actor)

    async def status(self, rollout_id: str) -> dict[str, Any]:
        """The current step's arms (merged across processes, this one flushed first), the
        guardrails' verdict and what the controller waits for."""
        record = await self.service.get(rollout_id)
        await asyncio.to_thread(self.traffic.write, self.traffic.collect())
        stats = await self.service.window(record)
        breaches = evaluate(record.spec.guardrails, stats["canary"], stats["baseline"])
        now = self.service.clock()
        decision = decide(record, stats, now)
        steps = record.spec.steps
        return {
            "rollout": record.id, "model": record.model, "state": record.state,
            "step": record.step, "steps": len(steps), "percent": record.percent,
            "arms": {arm: s.to_dict() for arm, s in stats.items()},
            "guardrails": {"breaches": breaches, "ok": not breaches},
            "next": {"action": decision.action, "wait_s": decision.wait_s,
                     "requests_needed": decision.requests_needed,
                     "step_active_s": record.step_active_s(now)},
            "reason": record.reason, "breach": record.breach,
        }  # fmt: skip
