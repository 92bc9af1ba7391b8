"""The route shape ``/v1/experiments`` and ``/v1/rollouts`` share.

    GET   /v1/<things>[?model=&state=]     list, newest first
    POST  /v1/<things>                     create (201)
    GET   /v1/<things>/{id}                one
    GET   /v1/<things>/{id}/<view>         a computed view (results, status)
    POST  /v1/<things>/{id}/<action>       a lifecycle action; this process re-reads routing

Each area names its service, its views and its actions; :class:`LifecycleRoutes` answers the
rest the same way for both, so a method, a 404 or a refresh cannot differ between them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from inferd.api._request import json_object
from inferd.errors import InferdError, require_method
from inferd.traffic.policy import TrafficPolicy

Reply = tuple[int, Any]


class Record(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class Service(Protocol):
    """What the routes need of an experiment or rollout service."""

    async def find(self, model: str | None = ..., state: str | None = ...) -> Sequence[Record]: ...

    async def create(self, body: Any, actor: str = ...) -> Record: ...

    async def get(self, item_id: str, /) -> Record: ...


# An action: (id, the body's JSON object, actor) -> the changed record.
Action = Callable[[str, dict[str, Any], str], Awaitable[Record]]
View = Callable[[str], Awaitable[Any]]  # id -> the document


class LifecycleRoutes:
    """List, create, show, views and actions over one service.

    Args:
        service: finds, creates and gets the records.
        traffic: this process's routing, re-read after every change.
        actions: ``POST /{id}/<name>`` -> what it does.
        views: ``GET /{id}/<name>`` -> what it answers.
        not_found: the 404 for a path that names nothing.
    """

    def __init__(
        self, service: Service, traffic: TrafficPolicy, actions: Mapping[str, Action],
        views: Mapping[str, View], not_found: Callable[[str], InferdError],
    ) -> None:  # fmt: skip
        self.service = service
        self.traffic = traffic
        self.actions = actions
        self.views = views
        self.not_found = not_found

    async def handle(
        self, method: str, parts: list[str], query: dict[str, str], body: bytes, actor: str
    ) -> Reply:
        """Answer one request; ``parts`` is the path after ``/v1/<things>``."""
        svc = self.service
        if not parts:
            if method == "GET":
                found = await svc.find(query.get("model"), query.get("state"))
                return 200, [r.to_dict() for r in found]
            require_method(method, "POST", listed="GET, POST")
            record = await svc.create(json_object(body, required=True), actor)
            await asyncio.to_thread(self.traffic.refresh)
            return 201, record.to_dict()
        item_id, rest = parts[0], parts[1:]
        if not rest:
            require_method(method, "GET", listed="GET")
            return 200, (await svc.get(item_id)).to_dict()
        if len(rest) == 1 and rest[0] in self.views:
            require_method(method, "GET", listed="GET")
            return 200, await self.views[rest[0]](item_id)
        if len(rest) == 1 and rest[0] in self.actions:
            require_method(method, "POST", listed="POST")
            record = await self.actions[rest[0]](item_id, json_object(body), actor)
            await asyncio.to_thread(self.traffic.refresh)
            return 200, record.to_dict()
        raise self.not_found("/".join(parts))
