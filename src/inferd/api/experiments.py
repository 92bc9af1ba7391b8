"""REST endpoints of A/B/n experiments, under ``/v1/experiments``.

GET   /v1/experiments[?model=&state=]          list, newest first
POST  /v1/experiments                          create a draft {"name", "model", "variants", ...}
GET   /v1/experiments/{id}                     definition, state, weights
POST  /v1/experiments/{id}/start|pause|resume  lifecycle actions
POST  /v1/experiments/{id}/stop                {"reason"?}
POST  /v1/experiments/{id}/conclude            {"winner"?, "reason"?}: the winner is promoted
POST  /v1/experiments/{id}/weights             {"weights": [...]}
GET   /v1/experiments/{id}/results             per-variant counts, effects, p-values, SRM
POST  /v1/experiments/{id}/outcomes            one outcome, a list, or {"outcomes": [...]}

Changing needs an operator key; posting outcomes a predict key whose scope has the model.
Each change refreshes this process's routing at once (other replicas within a poll).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from inferd.api._lifecycle import Action, LifecycleRoutes, Reply
from inferd.api._request import optional_text
from inferd.errors import ExperimentNotFound, InvalidInput, PermissionDenied, require_method
from inferd.security.keys import ApiKey
from inferd.traffic import outcomes as outcome_rules
from inferd.traffic.experiments import ExperimentService
from inferd.traffic.looks import LookStore, carry
from inferd.traffic.policy import TrafficPolicy
from inferd.traffic.results import compute
from inferd.traffic.sample_ratio import read_periods


class ExperimentRoutes:
    """Dispatches ``/v1/experiments...`` to the experiment service."""

    def __init__(self, service: ExperimentService, traffic: TrafficPolicy) -> None:
        self.service = service
        self.traffic = traffic
        actions: dict[str, Action] = {
            "start": lambda i, _, actor: service.start(i, actor),
            "pause": lambda i, _, actor: service.pause(i, actor),
            "resume": lambda i, _, actor: service.resume(i, actor),
            "stop": lambda i, data, actor: service.stop(
                i, actor, optional_text(data, "reason") or ""
            ),
            "conclude": lambda i, data, actor: service.conclude(
                i, optional_text(data, "winner"), actor, optional_text(data, "reason") or ""
            ),
            "weights": lambda i, data, actor: service.set_weights(i, data.get("weights"), actor),
        }
        self.routes = LifecycleRoutes(
            service, traffic, actions, {"results": self.results}, ExperimentNotFound
        )

    async def handle(
        self, method: str, parts: list[str], query: dict[str, str], body: bytes, actor: str,
        caller: ApiKey | None = None,
    ) -> Reply:  # fmt: skip
        """Answer one request; ``parts`` is the path after ``/v1/experiments``."""
        if parts[1:] == ["outcomes"]:  # the one route for predict keys, so it takes the caller
            require_method(method, "POST", listed="POST")
            return 200, await self.outcomes(parts[0], body, caller)
        return await self.routes.handle(method, parts, query, body, actor)

    async def results(self, exp_id: str) -> dict[str, Any]:
        """Flush this process's tallies first, so the results include its latest requests.

        Each call is a look: the sequential p-values are the running minima over every look
        (``inferd.traffic.looks``), lowered by this one and stored.
        """
        record = await self.service.get(exp_id)
        store = self.service.store
        looks = LookStore(store.registry)
        await asyncio.to_thread(self.traffic.write, self.traffic.collect())
        tallies = await asyncio.to_thread(store.aggregates, exp_id)
        totals, pending = await asyncio.to_thread(store.outcome_totals, exp_id)
        periods = await asyncio.to_thread(read_periods, store.registry, record)
        previous = await asyncio.to_thread(looks.running, exp_id)
        doc = compute(record, tallies, totals, pending, periods)
        minima = carry(doc, previous, record.spec.alpha)
        await asyncio.to_thread(looks.save, exp_id, minima, self.service.now())
        return doc

    async def outcomes(self, exp_id: str, body: bytes, caller: ApiKey | None) -> dict[str, Any]:
        record = await self.service.get(exp_id)
        if caller is not None and not caller.allows_model(record.model):
            raise PermissionDenied(f"API key '{caller.id}' may not use model '{record.model}'")
        parsed = outcome_rules.parse_outcomes(_json(body))
        store = self.service.store

        def from_memory(ids: list[str]) -> dict[str, str]:
            return self.traffic.pending_variant(exp_id, ids)

        def from_registry(ids: list[str]) -> dict[str, str]:
            return store.exposure_variants(exp_id, ids)

        def attach_and_store() -> int:
            unknown = outcome_rules.attach_variants(record, parsed, from_memory, from_registry)
            store.add_outcomes(exp_id, parsed, self.service.now())
            return unknown

        pending = await asyncio.to_thread(attach_and_store)
        return {"accepted": len(parsed), "pending": pending}


def _json(body: bytes) -> Any:
    expected = 'one outcome, a list of them, or {"outcomes": [...]}'
    if not body.strip():
        raise InvalidInput("body", expected, "nothing")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise InvalidInput("body", expected, f"invalid JSON ({err})") from None
