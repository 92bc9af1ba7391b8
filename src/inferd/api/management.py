"""REST endpoints of the management plane, under ``/v1``.

GET    /v1/models[?tag=&stage=&q=]                     list models
GET    /v1/models/{m}                                  model, versions, served state
PATCH  /v1/models/{m}                                  description, tags, gates, config
DELETE /v1/models/{m}
GET    /v1/models/{m}/versions[?stage=&metric=]        list versions
POST   /v1/models/{m}/versions                         register {"artifact_uri", ...}
GET    /v1/models/{m}/versions/{v}
PATCH  /v1/models/{m}/versions/{v}                     metadata
DELETE /v1/models/{m}/versions/{v}
POST   /v1/models/{m}/versions/{v}/promote             to production (hot swap)
POST   /v1/models/{m}/versions/{v}/stage               {"stage": "staging"}
POST   /v1/models/{m}/versions/{v}/archive
POST   /v1/models/{m}/default                          {"version": N}, same as promote
POST   /v1/models/{m}/rollback
GET    /v1/models/{m}/audit, GET /v1/audit             audit log, newest first
/v1/jobs...                                            batch jobs (inferd.api.jobs)
/v1/keys...                                            API keys (inferd.api.keys)
/v1/experiments...                                     A/B experiments (inferd.api.experiments)
/v1/rollouts...                                        canary rollouts (inferd.api.rollouts)
/v1/models/{m}/shadow...                               shadow traffic (inferd.api.shadow)
/v1/models/{m}/drift..., .../versions/{v}/reference    drift detection (inferd.api.drift)
GET    /v1/alerts[?limit=&rule=]                       alerts and history (inferd.api.alerts)
GET    /v1/models/{m}/metrics[?minutes=5]              traffic summary (inferd.api.metrics)
"""

from __future__ import annotations

from typing import Any

from inferd.api._request import json_object, query_choice, query_limit
from inferd.api.alerts import AlertRoutes
from inferd.api.drift import DriftRoutes
from inferd.api.experiments import ExperimentRoutes
from inferd.api.jobs import JobRoutes
from inferd.api.keys import KeyRoutes
from inferd.api.metrics import MetricRoutes
from inferd.api.rollouts import RolloutRoutes
from inferd.api.shadow import ShadowRoutes
from inferd.errors import InvalidInput, MethodNotAllowed, ModelNotFound, require_method
from inferd.registry.records import Stage
from inferd.security.keys import ApiKey
from inferd.serving.management import ManagementPlane

Reply = tuple[int, Any]
STAGES = [s.value for s in Stage]
_CHANGES = "a JSON object with description, tags, gates or config"


def _field(
    data: dict[str, Any], name: str, kind: type | tuple[type, ...], required: bool = False
) -> Any:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidInput(f"body.{name}", "a value", "nothing")
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        expected = (
            kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        )
        raise InvalidInput(f"body.{name}", expected, repr(value)[:80])
    return value


def _version(text: str) -> int:
    if not text.isdigit():
        raise InvalidInput("version", "a positive integer", repr(text))
    return int(text)


class ManagementRoutes:
    """Dispatches ``/v1/...`` requests to the management plane."""

    def __init__(self, management: ManagementPlane) -> None:
        self.management = management
        self.jobs: JobRoutes | None = None  # batch jobs, set by the app when it runs them
        self.keys: KeyRoutes | None = None  # API keys, set by the app
        self.experiments: ExperimentRoutes | None = None  # A/B experiments, set by the app
        self.rollouts: RolloutRoutes | None = None  # canary rollouts, set by the app
        self.shadow: ShadowRoutes | None = None  # shadow traffic, set by the app
        self.drift: DriftRoutes | None = None  # drift detection, set by the app (and CLI)
        self.alerts: AlertRoutes | None = None  # active alerts and history, set by the app
        self.metrics: MetricRoutes | None = None  # per-model traffic summary, set by the app

    async def handle(
        self, method: str, parts: list[str], query: dict[str, str], body: bytes, actor: str,
        caller: ApiKey | None = None,
    ) -> Reply:  # fmt: skip
        """Answer one request; ``parts`` is the path after ``/v1``; ``caller`` is the key
        (auth on), for routes whose model is not in the path."""
        mp = self.management
        if parts and parts[0] == "experiments" and self.experiments is not None:
            return await self.experiments.handle(method, parts[1:], query, body, actor, caller)
        if parts and parts[0] == "rollouts" and self.rollouts is not None:
            return await self.rollouts.handle(method, parts[1:], query, body, actor)
        if parts and parts[0] == "jobs" and self.jobs is not None:
            return await self.jobs.handle(method, parts[1:], query, body, actor)
        if parts and parts[0] == "keys" and self.keys is not None:
            return await self.keys.handle(method, parts[1:], query, body, actor)
        if parts and parts[0] == "alerts" and self.alerts is not None:
            return await self.alerts.handle(method, parts[1:], query)
        if parts == ["audit"]:
            require_method(method, "GET")
            entries = await mp.audit(None, query_limit(query))
            return 200, [e.to_dict() for e in entries]
        if not parts or parts[0] != "models":
            raise ModelNotFound("/v1/" + "/".join(parts))
        if len(parts) == 1:
            require_method(method, "GET")
            stage = query_choice(query, "stage", STAGES)
            filters = {"tag": query.get("tag"), "stage": stage, "query": query.get("q")}
            return 200, [m.to_dict() for m in await mp.list_models(**filters)]
        name, rest = parts[1], parts[2:]
        if not rest:
            return await self._model(method, name, body, actor)
        if rest[0] == "shadow" and self.shadow is not None:
            return await self.shadow.handle(method, name, rest[1:], body, actor, caller)
        if rest == ["metrics"] and self.metrics is not None:
            return await self.metrics.handle(method, name, query)
        if rest[0] == "drift" and self.drift is not None:
            return await self.drift.drift(method, name, rest[1:], query, body)
        if (
            len(rest) == 3
            and rest[0] == "versions"
            and rest[2] == "reference"
            and self.drift is not None
        ):
            return await self.drift.reference(method, name, _version(rest[1]), body)
        if rest[0] == "versions":
            return await self._versions(method, name, rest[1:], query, body, actor)
        if rest == ["rollback"]:
            require_method(method, "POST")
            return 200, (await mp.rollback(name, actor)).to_dict()
        if rest == ["default"]:
            require_method(method, "POST")
            version = _field(json_object(body), "version", int, required=True)
            return 200, (await mp.promote(name, version, actor)).to_dict()
        if rest == ["audit"]:
            require_method(method, "GET")
            entries = await mp.audit(name, query_limit(query))
            return 200, [e.to_dict() for e in entries]
        raise ModelNotFound("/v1/" + "/".join(parts))

    async def _model(self, method: str, name: str, body: bytes, actor: str) -> Reply:
        mp = self.management
        if method == "GET":
            return 200, await mp.show_model(name)
        if method == "PATCH":
            data = json_object(body, required=True, expected=_CHANGES)
            changes = {k: data[k] for k in ("description", "tags", "gates", "config") if k in data}
            unknown = set(data) - set(changes)
            if not data:
                raise InvalidInput("body", _CHANGES, "an empty object: nothing to change")
            if unknown:
                raise InvalidInput("body", _CHANGES, f"unknown fields {sorted(unknown)}")
            return 200, (await mp.update_model(name, actor, **changes)).to_dict()
        if method == "DELETE":
            await mp.delete_model(name, actor)
            return 200, {"deleted": name}
        raise MethodNotAllowed(method, "GET, PATCH, DELETE")

    async def _versions(
        self, method: str, name: str, rest: list[str], query: dict[str, str], body: bytes,
        actor: str,
    ) -> Reply:  # fmt: skip
        mp = self.management
        if not rest:
            if method == "GET":
                records = await mp.list_versions(
                    name, stage=query_choice(query, "stage", STAGES), metric=query.get("metric")
                )
                return 200, [r.to_dict() for r in records]
            require_method(method, "POST", listed="GET, POST")
            data = json_object(body)
            record = await mp.register_version(
                name,
                _field(data, "artifact_uri", str, required=True),
                version=_field(data, "version", int),
                metadata=_field(data, "metadata", dict),
                stage=_field(data, "stage", str) or "registered",
                config=_field(data, "config", dict),
                actor=actor,
            )
            return 201, record.to_dict()
        version = _version(rest[0])
        action = rest[1] if len(rest) > 1 else ""
        if len(rest) > 2:
            raise ModelNotFound(name, "/".join(rest))
        if action == "":
            if method == "GET":
                return 200, (await mp.get_version(name, version)).to_dict()
            if method == "PATCH":
                changes = json_object(body, required=True)
                record = await mp.update_version(name, version, actor, **changes)
                return 200, record.to_dict()
            if method == "DELETE":
                await mp.delete_version(name, version, actor)
                return 200, {"deleted": f"{name}/{version}"}
            raise MethodNotAllowed(method, "GET, PATCH, DELETE")
        require_method(method, "POST")
        if action == "promote":
            return 200, (await mp.promote(name, version, actor)).to_dict()
        if action == "archive":
            return 200, (await mp.set_stage(name, version, "archived", actor)).to_dict()
        if action == "stage":
            stage = _field(json_object(body), "stage", str, required=True)
            return 200, (await mp.set_stage(name, version, stage, actor)).to_dict()
        raise ModelNotFound(name, f"{version}/{action}")
