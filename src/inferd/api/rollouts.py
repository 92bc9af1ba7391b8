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

from inferd.api._request import json_object, optional_text
from inferd.errors import require_method
from inferd.traffic.guardrails import evaluate
from inferd.traffic.policy import TrafficPolicy
from inferd.traffic.rollout_store import RolloutNotFound, RolloutRecord
from inferd.traffic.rollouts import RolloutService, decide

Reply = tuple[int, Any]
_ACTIONS = ("pause", "resume", "advance", "abort")


class RolloutRoutes:
    """Dispatches ``/v1/rollouts...`` to the rollout service."""

    def __init__(self, service: RolloutService, traffic: TrafficPolicy) -> None:
        self.service = service
        self.traffic = traffic

    async def handle(
        self, method: str, parts: list[str], query: dict[str, str], body: bytes, actor: str
    ) -> Reply:
        """Answer one request; ``parts`` is the path after ``/v1/rollouts``."""
        svc = self.service
        if not parts:
            if method == "GET":
                found = await svc.find(query.get("model"), query.get("state"))
                return 200, [r.to_dict() for r in found]
            require_method(method, "POST", listed="GET, POST")
            record = await svc.create(json_object(body, required=True), actor)
            await asyncio.to_thread(self.traffic.refresh)
            return 201, record.to_dict()
        rollout_id, rest = parts[0], parts[1:]
        if not rest:
            require_method(method, "GET", listed="GET")
            return 200, (await svc.get(rollout_id)).to_dict()
        if rest == ["status"]:
            require_method(method, "GET", listed="GET")
            return 200, await self.status(rollout_id)
        if len(rest) == 1 and rest[0] in _ACTIONS:
            require_method(method, "POST", listed="POST")
            record = await self._act(rollout_id, rest[0], json_object(body), actor)
            await asyncio.to_thread(self.traffic.refresh)
            return 200, record.to_dict()
        raise RolloutNotFound("/".join(parts))

    async def _act(
        self, rollout_id: str, action: str, data: dict[str, Any], actor: str
    ) -> RolloutRecord:
        svc = self.service
        if action == "pause":
            return await svc.pause(rollout_id, actor)
        if action == "resume":
            return await svc.resume(rollout_id, actor)
        if action == "advance":
            return await svc.advance(rollout_id, actor)
        return await svc.abort(rollout_id, actor, optional_text(data, "reason") or "")

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
