"""The ``/v1`` management calls of the SDK, without I/O, and the shapes they return.

Models and versions (registry, stages, hot swaps, rollback, audit), batch jobs, API keys,
A/B experiments and shadow traffic.
Each method of :class:`ManagementCalls` returns an :class:`HttpCall` that :class:`Client`
and :class:`AsyncClient` send; the answers are the server's JSON, typed as the
``TypedDict`` shapes below (fields may be added by later servers, never removed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, cast
from urllib.parse import quote, urlencode

import orjson

from inferd.client._http import HttpCall

_OK = frozenset({200})
_CREATED = frozenset({201})


class VersionInfo(TypedDict, total=False):
    """A registered version (``GET /v1/models/{m}/versions/{v}``)."""

    model: str
    version: int
    platform: str
    artifact_uri: str
    digest: str
    size_bytes: int
    stage: str  # registered | staging | production | archived
    status: str  # registered | ready | failed
    status_reason: str
    signature: dict[str, Any] | None
    metrics: dict[str, float]
    tags: list[str]
    description: str
    training: dict[str, Any]
    pinned: bool
    registered_by: str
    created_at: str | None
    updated_at: str | None
    promoted_at: str | None
    served: str  # only in get_model: this replica's state of the version


class ModelInfo(TypedDict, total=False):
    """A registered model (``GET /v1/models``); ``get_model`` adds ``versions``."""

    name: str
    description: str
    tags: list[str]
    config: dict[str, Any] | None
    gates: list[str]
    created_by: str
    created_at: str | None
    updated_at: str | None
    production_version: int | None
    latest_version: int | None
    versions: list[VersionInfo]


class AuditInfo(TypedDict, total=False):
    """One audit log entry: who changed what, from what to what."""

    at: str
    actor: str
    action: str
    model: str
    version: int | None
    from_value: str | None
    to_value: str | None
    detail: dict[str, Any]


class JobInfo(TypedDict, total=False):
    """A batch inference job and its progress (``GET /v1/jobs/{id}``)."""

    id: str
    model: str
    version: int
    state: str  # queued | running | succeeded | failed | cancelled
    spec: dict[str, Any]
    error: str
    rows_total: int | None
    rows_done: int
    rows_failed: int
    chunks_total: int | None
    chunks_done: int
    attempts: int
    output_uri: str
    rows_per_s: float | None
    eta_s: float | None
    created_by: str
    created_at: str | None
    started_at: str | None
    finished_at: str | None


class TableInfo(TypedDict, total=False):
    """A job's output published as a precomputed table (``GET /v1/jobs/{id}/publish``)."""

    id: str
    model: str
    version: int
    job_id: str
    key_column: str
    store: str  # db | redis
    rows: int
    state: str  # loading | active | replaced | failed | deleted
    error: str
    computed_at: float
    max_age_s: float | None
    age_s: float


class KeyInfo(TypedDict, total=False):
    """An API key as listed (never its secret); ``create_key`` adds ``key``, once."""

    id: str
    role: str
    models: list[str] | None
    name: str
    created_by: str
    created_at: str | None
    revoked_at: str | None
    key: str


class ExperimentInfo(TypedDict, total=False):
    """An A/B/n experiment (``GET /v1/experiments/{id}``)."""

    id: str
    name: str
    model: str
    state: str  # draft | running | paused | concluded | stopped
    spec: dict[str, Any]
    weights: list[float]
    weight_history: list[list[float]]
    winner: str | None
    reason: str
    created_by: str
    created_at: str | None
    started_at: str | None
    ended_at: str | None
    updated_at: str | None


class RolloutInfo(TypedDict, total=False):
    """A canary rollout (``GET /v1/rollouts/{id}``)."""

    id: str
    name: str
    model: str
    state: str  # pending | running | paused | rolled_back | completed | aborted
    spec: dict[str, Any]
    baseline: int
    candidate: int
    step: int
    percent: float
    percent_history: list[float]
    reason: str
    breach: list[dict[str, Any]] | None
    history: list[dict[str, Any]]
    created_by: str
    created_at: str | None
    step_started_at: str | None
    started_at: str | None
    ended_at: str | None
    updated_at: str | None


class ShadowInfo(TypedDict, total=False):
    """A model's shadow target (``GET /v1/models/{m}/shadow``)."""

    model: str
    version: int
    fraction: float
    queue_size: int
    updated_by: str
    updated_at: str | None


EXPERIMENT_ACTIONS = frozenset({"start", "pause", "resume", "stop", "conclude", "weights"})
ROLLOUT_ACTIONS = frozenset({"pause", "resume", "advance", "abort"})


def _q(part: str | int) -> str:
    return quote(str(part), safe="")


def _query(**values: Any) -> str:
    given = {k: v for k, v in values.items() if v is not None}
    return f"?{urlencode(given)}" if given else ""


class ManagementCalls:
    """Builds the ``/v1`` calls; see :class:`inferd.client.Client` for their documentation."""

    @staticmethod
    def call(
        method: str, path: str, body: Mapping[str, Any] | None = None,
        accept: frozenset[int] = _OK,
    ) -> HttpCall[Any]:  # fmt: skip
        """Any ``/v1`` call: ``path`` is relative to ``/v1``."""
        data = None if body is None else orjson.dumps(body)
        headers = {"content-type": "application/json"} if data is not None else None

        def parse(status: int, raw: bytes, _: Mapping[str, str]) -> Any:
            return orjson.loads(raw) if raw else None

        return HttpCall(method, "/v1/" + path.lstrip("/"), parse, data, headers, accept)

    # -- models and versions ----------------------------------------------------------------

    def list_models(
        self, tag: str | None, stage: str | None, query: str | None
    ) -> HttpCall[list[ModelInfo]]:
        return self.call("GET", "models" + _query(tag=tag, stage=stage, q=query))

    def get_model(self, name: str) -> HttpCall[ModelInfo]:
        return self.call("GET", f"models/{_q(name)}")

    def update_model(self, name: str, changes: Mapping[str, Any]) -> HttpCall[ModelInfo]:
        return self.call("PATCH", f"models/{_q(name)}", changes)

    def delete_model(self, name: str) -> HttpCall[None]:
        return cast(HttpCall[None], self.call("DELETE", f"models/{_q(name)}"))

    def list_versions(self, name: str, stage: str | None) -> HttpCall[list[VersionInfo]]:
        return self.call("GET", f"models/{_q(name)}/versions" + _query(stage=stage))

    def get_version(self, name: str, version: int) -> HttpCall[VersionInfo]:
        return self.call("GET", f"models/{_q(name)}/versions/{_q(version)}")

    def register_version(self, name: str, body: Mapping[str, Any]) -> HttpCall[VersionInfo]:
        return self.call("POST", f"models/{_q(name)}/versions", body, _CREATED)

    def update_version(
        self, name: str, version: int, changes: Mapping[str, Any]
    ) -> HttpCall[VersionInfo]:
        return self.call("PATCH", f"models/{_q(name)}/versions/{_q(version)}", changes)

    def delete_version(self, name: str, version: int) -> HttpCall[None]:
        path = f"models/{_q(name)}/versions/{_q(version)}"
        return cast(HttpCall[None], self.call("DELETE", path))

    def promote(self, name: str, version: int) -> HttpCall[VersionInfo]:
        return self.call("POST", f"models/{_q(name)}/versions/{_q(version)}/promote")

    def set_stage(self, name: str, version: int, stage: str) -> HttpCall[VersionInfo]:
        path = f"models/{_q(name)}/versions/{_q(version)}/stage"
        return self.call("POST", path, {"stage": stage})

    def rollback(self, name: str) -> HttpCall[VersionInfo]:
        return self.call("POST", f"models/{_q(name)}/rollback")

    def audit(self, name: str | None, limit: int) -> HttpCall[list[AuditInfo]]:
        path = "audit" if name is None else f"models/{_q(name)}/audit"
        return self.call("GET", path + _query(limit=limit))

    def model_metrics(self, name: str, minutes: float | None) -> HttpCall[dict[str, Any]]:
        return self.call("GET", f"models/{_q(name)}/metrics{_query(minutes=minutes)}")

    # -- jobs ------------------------------------------------------------------------------

    def submit_job(self, spec: Mapping[str, Any]) -> HttpCall[JobInfo]:
        return self.call("POST", "jobs", spec, _CREATED)

    def get_job(self, job_id: str) -> HttpCall[JobInfo]:
        return self.call("GET", f"jobs/{_q(job_id)}")

    def list_jobs(self, state: str | None, limit: int) -> HttpCall[list[JobInfo]]:
        return self.call("GET", "jobs" + _query(state=state, limit=limit))

    def cancel_job(self, job_id: str) -> HttpCall[JobInfo]:
        return self.call("POST", f"jobs/{_q(job_id)}/cancel")

    def resume_job(self, job_id: str) -> HttpCall[JobInfo]:
        return self.call("POST", f"jobs/{_q(job_id)}/resume")

    def publish_job(self, job_id: str, body: Mapping[str, Any]) -> HttpCall[TableInfo]:
        return self.call("POST", f"jobs/{_q(job_id)}/publish", body, _CREATED)

    def published_table(self, job_id: str) -> HttpCall[TableInfo]:
        return self.call("GET", f"jobs/{_q(job_id)}/publish")

    def unpublish_job(self, job_id: str) -> HttpCall[TableInfo]:
        return self.call("DELETE", f"jobs/{_q(job_id)}/publish")

    # -- keys ------------------------------------------------------------------------------

    def create_key(self, role: str, models: Sequence[str] | None, name: str) -> HttpCall[KeyInfo]:
        body = {"role": role, "models": list(models) if models is not None else None, "name": name}
        return self.call("POST", "keys", body, _CREATED)

    def list_keys(self, revoked: bool) -> HttpCall[list[KeyInfo]]:
        return self.call("GET", "keys" + _query(revoked="true" if revoked else None))

    def revoke_key(self, key_id: str) -> HttpCall[KeyInfo]:
        return self.call("DELETE", f"keys/{_q(key_id)}")

    # -- experiments -----------------------------------------------------------------------

    def create_experiment(self, spec: Mapping[str, Any]) -> HttpCall[ExperimentInfo]:
        return self.call("POST", "experiments", spec, _CREATED)

    def list_experiments(
        self, model: str | None, state: str | None
    ) -> HttpCall[list[ExperimentInfo]]:
        return self.call("GET", "experiments" + _query(model=model, state=state))

    def get_experiment(self, exp_id: str) -> HttpCall[ExperimentInfo]:
        return self.call("GET", f"experiments/{_q(exp_id)}")

    def experiment_action(
        self, exp_id: str, action: str, body: Mapping[str, Any]
    ) -> HttpCall[ExperimentInfo]:
        if action not in EXPERIMENT_ACTIONS:
            raise ValueError(f"action must be one of {sorted(EXPERIMENT_ACTIONS)}, not {action!r}")
        return self.call("POST", f"experiments/{_q(exp_id)}/{action}", body)

    def experiment_results(self, exp_id: str) -> HttpCall[dict[str, Any]]:
        return self.call("GET", f"experiments/{_q(exp_id)}/results")

    def post_outcomes(
        self, exp_id: str, outcomes: Sequence[Mapping[str, Any]]
    ) -> HttpCall[dict[str, int]]:
        return self.call("POST", f"experiments/{_q(exp_id)}/outcomes",
                         {"outcomes": list(outcomes)})  # fmt: skip

    # -- rollouts ----------------------------------------------------------------------------

    def create_rollout(self, spec: Mapping[str, Any]) -> HttpCall[RolloutInfo]:
        return self.call("POST", "rollouts", spec, _CREATED)

    def list_rollouts(self, model: str | None, state: str | None) -> HttpCall[list[RolloutInfo]]:
        return self.call("GET", "rollouts" + _query(model=model, state=state))

    def get_rollout(self, rollout_id: str) -> HttpCall[RolloutInfo]:
        return self.call("GET", f"rollouts/{_q(rollout_id)}")

    def rollout_action(
        self, rollout_id: str, action: str, body: Mapping[str, Any]
    ) -> HttpCall[RolloutInfo]:
        if action not in ROLLOUT_ACTIONS:
            raise ValueError(f"action must be one of {sorted(ROLLOUT_ACTIONS)}, not {action!r}")
        return self.call("POST", f"rollouts/{_q(rollout_id)}/{action}", body)

    def rollout_status(self, rollout_id: str) -> HttpCall[dict[str, Any]]:
        return self.call("GET", f"rollouts/{_q(rollout_id)}/status")

    # -- shadow traffic --------------------------------------------------------------------

    def set_shadow(
        self, model: str, version: int, fraction: float, queue_size: int | None
    ) -> HttpCall[ShadowInfo]:
        body: dict[str, Any] = {"version": version, "fraction": fraction}
        if queue_size is not None:
            body["queue_size"] = queue_size
        return self.call("PUT", f"models/{_q(model)}/shadow", body)

    def get_shadow(self, model: str) -> HttpCall[ShadowInfo]:
        return self.call("GET", f"models/{_q(model)}/shadow")

    def delete_shadow(self, model: str) -> HttpCall[ShadowInfo]:
        return self.call("DELETE", f"models/{_q(model)}/shadow")

    def shadow_results(self, model: str) -> HttpCall[dict[str, Any]]:
        return self.call("GET", f"models/{_q(model)}/shadow/results")

    # -- drift detection ------------------------------------------------------------------------

    def model_drift(
        self, name: str, version: int | None, refresh: bool
    ) -> HttpCall[dict[str, Any]]:
        query = _query(version=version, refresh="true" if refresh else None)
        return self.call("GET", f"models/{_q(name)}/drift{query}")

    def drift_settings(self, name: str) -> HttpCall[dict[str, Any]]:
        return self.call("GET", f"models/{_q(name)}/drift/settings")

    def set_drift_settings(self, name: str, changes: Mapping[str, Any]) -> HttpCall[dict[str, Any]]:
        return self.call("PUT", f"models/{_q(name)}/drift/settings", changes)

    def get_reference(self, name: str, version: int) -> HttpCall[dict[str, Any]]:
        return self.call("GET", f"models/{_q(name)}/versions/{_q(version)}/reference")

    def set_reference(
        self, name: str, version: int, body: Mapping[str, Any]
    ) -> HttpCall[dict[str, Any]]:
        return self.call("PUT", f"models/{_q(name)}/versions/{_q(version)}/reference", body)

    # -- alerts ---------------------------------------------------------------------------------

    def list_alerts(self, rule: str | None, limit: int | None) -> HttpCall[dict[str, Any]]:
        return self.call("GET", "alerts" + _query(rule=rule, limit=limit))


def reference_body(
    reference: str | Mapping[str, Sequence[Any]], categorical: Sequence[str] = ()
) -> dict[str, Any]:
    """A reference dataset as the PUT body: its profile, computed on the caller's side.

    Args:
        reference: a .csv or .parquet path or fsspec URI, or columns (name -> values).
        categorical: numeric columns to treat as categories.
    """
    from inferd.monitoring.drift_dataset import read_columns  # numpy work: only when used
    from inferd.monitoring.drift_profile import Profile

    columns = read_columns(reference) if isinstance(reference, str) else reference
    return {"profile": Profile.of(columns, categorical=categorical).to_dict()}


JOB_DONE = frozenset({"succeeded", "failed", "cancelled"})


def publish_body(
    key: str, store: str, max_age: str | float | None, model: str | None, version: int | None
) -> dict[str, Any]:
    """The ``POST /v1/jobs/{id}/publish`` body, without the options left at their defaults."""
    body: dict[str, Any] = {"key": key, "store": store}
    for name, value in (("max_age", max_age), ("model", model), ("version", version)):
        if value is not None:
            body[name] = value
    return body
