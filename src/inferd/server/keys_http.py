"""REST endpoints for API keys, under ``/v1/keys`` (admin role when auth is on).

GET    /v1/keys[?revoked=true]           list keys (never the secrets)
POST   /v1/keys                          {"role", "models"?, "name"?} -> the key, shown once
DELETE /v1/keys/{id}                     revoke at once (also POST /v1/keys/{id}/revoke)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from inferd.errors import InvalidInput, KeyNotFound
from inferd.security.keys import KeyStore, Role, parse_models

Reply = tuple[int, Any]


class KeyRoutes:
    """Dispatches ``/v1/keys/...``.

    Args:
        store: the registry's keys.
        on_change: called after a key is created or revoked (refreshes this process's cache).
    """

    def __init__(self, store: KeyStore, on_change: Callable[[], None] | None = None) -> None:
        self.store = store
        self.on_change = on_change

    async def handle(
        self, method: str, parts: list[str], query: dict[str, str], body: bytes, actor: str
    ) -> Reply:
        """Answer one request; ``parts`` is the path after ``/v1/keys``."""
        if not parts:
            if method == "GET":
                revoked = query.get("revoked", "").lower() in ("1", "true", "yes")
                keys = await asyncio.to_thread(self.store.list, revoked)
                return 200, [k.to_dict() for k in keys]
            if method == "POST":
                return 201, await self._create(body, actor)
            raise InvalidInput("method", "GET or POST", method)
        revoke = (len(parts) == 1 and method == "DELETE") or (
            parts[1:] == ["revoke"] and method == "POST"
        )
        if revoke:
            record = await asyncio.to_thread(self.store.revoke, parts[0], actor)
            await self._changed()
            return 200, record.to_dict()
        raise KeyNotFound("/".join(parts))

    async def _create(self, body: bytes, actor: str) -> dict[str, Any]:
        try:
            data = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError as err:
            raise InvalidInput("body", "a JSON object", f"invalid JSON ({err})") from None
        if not isinstance(data, dict):
            raise InvalidInput("body", "a JSON object", type(data).__name__)
        role = data.get("role")
        if not isinstance(role, str):
            raise InvalidInput("body.role", "predict, operator or admin", repr(role)[:40])
        models = data.get("models")
        if models is not None and not isinstance(models, list | str):
            raise InvalidInput("body.models", "a list of model names", repr(models)[:80])
        name = data.get("name") or ""
        if not isinstance(name, str) or len(name) > 200:
            raise InvalidInput("body.name", "a string of at most 200 characters", "other")
        key, record = await asyncio.to_thread(
            self.store.create, Role.parse(role), parse_models(models), name, actor
        )
        await self._changed()
        return {**record.to_dict(), "key": key}

    async def _changed(self) -> None:
        if self.on_change is not None:
            await asyncio.to_thread(self.on_change)
