"""REST endpoints for API keys, under ``/v1/keys`` (admin role when auth is on).

GET    /v1/keys[?revoked=true]           list keys (never the secrets)
POST   /v1/keys                          {"role", "models"?, "name"?} -> the key, shown once
DELETE /v1/keys/{id}                     revoke at once (also POST /v1/keys/{id}/revoke)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from inferd.api._request import json_object, query_flag
from inferd.errors import InvalidInput, KeyNotFound, require_method
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
                revoked = query_flag(query, "revoked")
                keys = await asyncio.to_thread(self.store.list, revoked)
                return 200, [k.to_dict() for k in keys]
            require_method(method, "POST", listed="GET, POST")
            return 201, await self._create(body, actor)
        if len(parts) == 1:
            require_method(method, "DELETE")
        elif parts[1:] == ["revoke"]:
            require_method(method, "POST")
        if len(parts) == 1 or parts[1:] == ["revoke"]:
            record = await asyncio.to_thread(self.store.revoke, parts[0], actor)
            await self._changed()
            return 200, record.to_dict()
        raise KeyNotFound("/".join(parts))

    async def _create(self, body: bytes, actor: str) -> dict[str, Any]:
        data = json_object(body, required=True)
        role = data.get("role")
        if not isinstance(role, str):
            raise InvalidInput("body.role", "predict, operator or admin", repr(role)[:40])
        models = data.get("models")
        if models is not None and not isinstance(models, list | str):
            raise InvalidInput("body.models", "a list of model names", repr(models)[:80])
        name = data.get("name")
        if name is None:
            name = ""
        if not isinstance(name, str) or len(name) > 200:
            got = type(name).__name__ if not isinstance(name, str) else f"{len(name)} characters"
            raise InvalidInput("body.name", "a string of at most 200 characters", got)
        key, record = await asyncio.to_thread(
            self.store.create, Role.parse(role), parse_models(models), name, actor
        )
        await self._changed()
        return {**record.to_dict(), "key": key}

    async def _changed(self) -> None:
        if self.on_change is not None:
            await asyncio.to_thread(self.on_change)
