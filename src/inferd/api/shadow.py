"""REST endpoints of shadow traffic, under ``/v1/models/{m}/shadow``.

GET     /v1/models/{m}/shadow           the model's shadow target
PUT     /v1/models/{m}/shadow           {"version", "fraction", "queue_size"?}: set or replace it
DELETE  /v1/models/{m}/shadow           stop mirroring (the agreement stays readable)
GET     /v1/models/{m}/shadow/results   agreement per (primary, shadow) version pair

Reading needs a predict key whose scope has the model (the security policy lets it through);
changing needs an operator key, checked here. A change applies to this process at once and
to the other workers and replicas within one poll of the registry revision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from inferd.api._request import json_object
from inferd.errors import MethodNotAllowed, ModelNotFound, PermissionDenied, require_method
from inferd.registry import Registry
from inferd.security.keys import ApiKey, Role
from inferd.traffic.agreement import Agreement
from inferd.traffic.shadow import ShadowMirror
from inferd.traffic.shadow_config import parse_spec
from inferd.traffic.shadow_store import ShadowNotFound, ShadowStore

Reply = tuple[int, Any]
Preload = Callable[[str, int], Awaitable[object]]


class ShadowRoutes:
    """Dispatches ``/v1/models/{m}/shadow...`` to the shadow store and this process's mirror.

    Args:
        store: the shadow tables.
        mirror: this process's mirror (applied at once after a change, flushed before results).
        preload: loads and warms the shadow version before it is mirrored to; None skips it.
    """

    def __init__(
        self, store: ShadowStore, mirror: ShadowMirror, preload: Preload | None = None
    ) -> None:
        self.store = store
        self.mirror = mirror
        self.preload = preload

    @property
    def registry(self) -> Registry:
        return self.store.registry

    async def handle(
        self, method: str, model: str, rest: list[str], body: bytes, actor: str,
        caller: ApiKey | None = None,
    ) -> Reply:  # fmt: skip
        """Answer one request; ``rest`` is the path after ``/v1/models/{m}/shadow``."""
        if rest == ["results"]:
            require_method(method, "GET")
            return 200, await self.results(model)
        if rest:
            raise ModelNotFound(model, "shadow/" + "/".join(rest))
        if method == "GET":
            config = await asyncio.to_thread(self.store.get, model)
            if config is None:
                await asyncio.to_thread(self.registry.get_model, model)  # 404 for no model
                raise ShadowNotFound(model)
            return 200, config.to_dict()
        if method not in ("PUT", "DELETE"):
            raise MethodNotAllowed(method, "GET, PUT, DELETE")
        if caller is not None and caller.role < Role.OPERATOR:
            raise PermissionDenied(
                f"API key '{caller.id}' (role {caller.role.label}) may read the shadow of "
                f"'{model}' but not change it: that needs an operator key"
            )
        if method == "PUT":
            spec = parse_spec(json_object(body, required=True))
            await asyncio.to_thread(self.registry.get_version, model, spec.version)
            if self.preload is not None:
                await self.preload(model, spec.version)
            now = datetime.now(UTC)
            config = await asyncio.to_thread(self.store.put, model, spec, actor, now)
        else:
            config = await asyncio.to_thread(self.store.delete, model, actor)
        self.mirror.apply(await asyncio.to_thread(self.store.configs))
        return 200, config.to_dict()

    async def results(self, model: str) -> dict[str, Any]:
        """Every process's agreement per version pair, merged (this process's flushed first)."""
        await asyncio.to_thread(self.registry.get_model, model)  # 404 for no model
        await self.mirror.flush()
        found = await asyncio.to_thread(self.store.aggregates, model)
        config = await asyncio.to_thread(self.store.get, model)
        pairs = []
        for (primary, shadow), rows in sorted(found.items()):
            merged = Agreement()
            for row in rows:
                merged = merged.merge(Agreement.from_dict(row))
            pairs.append({"primary_version": primary, "shadow_version": shadow,
                          "processes": len(rows), **merged.summary()})  # fmt: skip
        return {
            "model": model,
            "config": config.to_dict() if config is not None else None,
            "pairs": pairs,
        }
