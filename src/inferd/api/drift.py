"""REST endpoints of drift detection.

GET  /v1/models/{m}/drift[?version=N&refresh=1] every watched version (or one): the stored
                                                check when younger than check_interval_s,
                                                else (or with refresh) a check now
GET  /v1/models/{m}/drift/settings              the model's drift settings
PUT  /v1/models/{m}/drift/settings              change some of them (the rest are kept)
GET  /v1/models/{m}/versions/{v}/reference      the version's reference profile, summarised
PUT  /v1/models/{m}/versions/{v}/reference      set it: {"uri": ".csv|.parquet"},
                                                {"profile": {...}} or {"data": {col: [...]}}

Reading drift needs the lowest role (predict) with the model in scope; changing settings or
references needs an operator key. A reference's columns named after the version's outputs
(or prefixed ``output.``) are its outputs, the rest its inputs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import ValidationError

from inferd.api._request import json_object, query_flag
from inferd.errors import InferdError, InvalidInput, ModelNotFound, require_method
from inferd.monitoring.drift import DriftMonitor, profile_of_rows
from inferd.monitoring.drift_check import OUTPUT, DriftSettings
from inferd.monitoring.drift_dataset import read_columns
from inferd.monitoring.drift_profile import Profile
from inferd.monitoring.drift_store import DriftStore
from inferd.serving.management import ManagementPlane

Reply = tuple[int, Any]
_REFERENCE = 'one of {"uri": "...csv|parquet"}, {"profile": {...}}, {"data": {column: [...]}}'


class ReferenceNotFound(InferdError):
    """A version without a reference profile."""

    http_status = 404
    grpc_code = "NOT_FOUND"

    def __init__(self, model: str, version: int) -> None:
        super().__init__(
            f"model '{model}' version {version} has no drift reference; PUT a dataset or "
            f"profile, or run `inferd models reference {model} {version} FILE`"
        )


def _settings(current: DriftSettings, changes: dict[str, Any]) -> DriftSettings:
    try:
        return DriftSettings.model_validate({**current.model_dump(), **changes})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"body.{where}", first["msg"], repr(first.get("input"))[:80]) from None


def split_outputs(profile: Profile, outputs: set[str]) -> Profile:
    """Move features named after an output (``y``, ``y[3]``, ``output.y``) to the outputs."""
    inputs, found = {}, dict(profile.outputs)
    for name, feature in profile.inputs.items():
        base = name.removeprefix(OUTPUT).split("[", 1)[0]
        if name.startswith(OUTPUT) or base in outputs:
            found[name.removeprefix(OUTPUT)] = feature
        else:
            inputs[name] = feature
    if not inputs:
        raise InvalidInput(
            "reference", "at least one input column", f"only outputs {sorted(found)}"
        )
    return Profile(inputs, found, profile.rows)


class DriftRoutes:
    """Dispatches the drift routes to the drift monitor and its store."""

    def __init__(self, monitor: DriftMonitor, management: ManagementPlane) -> None:
        self.monitor = monitor
        self.management = management

    @property
    def store(self) -> DriftStore:
        if self.monitor.store is None:
            raise ModelNotFound("drift detection (no registry)")
        return self.monitor.store

    async def drift(
        self, method: str, model: str, rest: list[str], query: dict[str, str], body: bytes
    ) -> Reply:
        """``/v1/models/{m}/drift`` and ``/drift/settings``."""
        await asyncio.to_thread(self.management.registry.get_model, model)
        if rest == ["settings"]:
            if method == "GET":
                await asyncio.to_thread(self.monitor.refresh)
                return 200, self.monitor.settings_of(model).model_dump(mode="json")
            require_method(method, "PUT", listed="GET, PUT")
            await asyncio.to_thread(self.monitor.refresh)
            settings = _settings(self.monitor.settings_of(model), json_object(body, required=True))
            await asyncio.to_thread(self.store.put_settings, model, settings)
            await asyncio.to_thread(self.monitor.refresh)
            return 200, settings.model_dump(mode="json")
        if rest:
            raise ModelNotFound(model, "drift/" + "/".join(rest))
        require_method(method, "GET", listed="GET")
        version = query.get("version")
        if version is not None and not version.isdigit():
            raise InvalidInput("version", "a version number", repr(version)[:40])
        number = int(version) if version is not None else None
        if number is not None:
            await self.management.get_version(model, number)
        results = await self.monitor.check_now(model, number, query_flag(query, "refresh"))
        current = self.monitor.settings_of(model).model_dump(mode="json")
        return 200, {"model": model, "settings": current, "versions": results}

    async def reference(self, method: str, model: str, version: int, body: bytes) -> Reply:
        """``/v1/models/{m}/versions/{v}/reference``."""
        record = await self.management.get_version(model, version)
        if method == "GET":
            found = await asyncio.to_thread(self.store.profile, model, version)
            if found is None:
                raise ReferenceNotFound(model, version)
            return 200, _summary(model, version, *found)
        require_method(method, "PUT", listed="GET, PUT")
        data = json_object(body, required=True, expected=_REFERENCE)
        profile = await asyncio.to_thread(_profile, data)
        profile = split_outputs(profile, await self._outputs(model, version, record.signature))
        await asyncio.to_thread(self.store.put_profile, model, version, profile, "dataset")
        await asyncio.to_thread(self.monitor.refresh)
        found = await asyncio.to_thread(self.store.profile, model, version)
        if found is None:  # deleted meanwhile
            raise ReferenceNotFound(model, version)
        return 200, _summary(model, version, *found)

    async def _outputs(self, model: str, version: int, signature: Any) -> set[str]:
        """Output names: the registered signature's, else the model config's, else those of
        the version this process has loaded."""
        found = {o["name"] for o in (signature or {}).get("outputs", [])}
        if not found:
            record = await asyncio.to_thread(self.management.registry.get_model, model)
            found = {o["name"] for o in (record.config or {}).get("outputs", []) or []}
        control = self.management.control
        if not found and control is not None:
            for held in control.manager.versions(model) if model in control.manager.names() else []:
                if held.label == str(version) and held.signature is not None:
                    found = {o.name for o in held.signature.outputs}
        return found


def _profile(data: dict[str, Any]) -> Profile:
    categorical = data.get("categorical") or []
    if not isinstance(categorical, list) or not all(isinstance(c, str) for c in categorical):
        raise InvalidInput("body.categorical", "a list of column names", repr(categorical)[:80])
    given = [k for k in ("uri", "profile", "data") if k in data]
    if len(given) != 1:
        raise InvalidInput("body", _REFERENCE, f"fields {sorted(data)}")
    try:
        if "uri" in data:
            if not isinstance(data["uri"], str):
                raise InvalidInput("body.uri", "a string", repr(data["uri"])[:80])
            return Profile.of(read_columns(data["uri"]), categorical=categorical)
        if "profile" in data:
            if not isinstance(data["profile"], dict):
                raise InvalidInput("body.profile", "an object", repr(data["profile"])[:80])
            return Profile.from_dict(data["profile"])
        given_columns = data["data"]
        if not isinstance(given_columns, dict) or not all(
            isinstance(v, list) for v in given_columns.values()
        ):
            raise InvalidInput("body.data", "an object of column lists", repr(given_columns)[:80])
        return profile_of_rows(given_columns, categorical)
    except ValueError as err:
        raise InvalidInput("body", _REFERENCE, str(err)) from None


def _summary(model: str, version: int, profile: Profile, source: str, at: Any) -> dict[str, Any]:
    def features(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {
            n: {"kind": f.kind, "count": f.count, "missing": f.missing, "mean": f.mean,
                "std": f.std, "categories": len(f.counts)}
            for n, f in found.items()
        }  # fmt: skip

    return {"model": model, "version": version, "source": source, "rows": profile.rows,
            "created_at": at.isoformat(), "inputs": features(profile.inputs),
            "outputs": features(profile.outputs)}  # fmt: skip
