"""The asyncio client: :class:`AsyncClient`, the awaitable twin of :class:`Client`.

Past 500 lines for the same reason as ``_client.py``: it mirrors the synchronous client's
whole public surface method for method, so a user finds every call in one place (the
request shapes themselves live in ``_manage.py`` and are shared by both).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import grpc
import httpx
import numpy as np

from inferd.client._client import (
    DEFAULT_TIMEOUT_S,
    MANAGE,
    complete,
    error_from_grpc,
    error_from_transport,
    raise_first,
    read_http,
)
from inferd.client._grpc import (
    STREAM_CODECS,
    STREAM_METHOD,
    GrpcCall,
    GrpcProtocol,
    stream_requests,
    stream_result,
)
from inferd.client._http import HttpCall, HttpProtocol
from inferd.client._manage import (
    JOB_DONE,
    AuditInfo,
    ExperimentInfo,
    JobInfo,
    KeyInfo,
    ModelInfo,
    RolloutInfo,
    ShadowInfo,
    TableInfo,
    VersionInfo,
    publish_body,
    reference_body,
)
from inferd.client._transport import Tls, open_transport
from inferd.client._types import ClientError, InferResult, Retry

T = TypeVar("T")


class AsyncClient:
    """An asyncio client over HTTP or gRPC; the same calls as :class:`Client`, awaitable.

    Args:
        url: ``http://host:8000`` or ``grpc://host:8001`` (``https://`` and ``grpcs://`` for
            TLS).
        timeout: seconds per call unless a call says otherwise.
        retry: the retry policy for 502 / 503 / UNAVAILABLE.
        binary: HTTP only: binary tensor extension (default) or JSON.
        max_message_bytes: gRPC only: largest message sent or received.
        api_key: API key sent with every call (``Authorization: Bearer``, gRPC metadata
            ``authorization``); default ``$INFERD_API_KEY``. A JWT works the same way.
        tls: the CA to trust and the client certificate (mTLS) for ``https://`` and
            ``grpcs://``; None: the system trust store and no client certificate.

    Example:
        >>> async with AsyncClient("http://localhost:8000") as client:
        ...     result = await client.infer("linear", {"x": np.ones(3, dtype=np.float32)})
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: Retry | None = None,
        binary: bool = True,
        max_message_bytes: int = 64 * 1024 * 1024,
        api_key: str | None = None,
        tls: Tls | None = None,
    ) -> None:
        transport = open_transport(
            url, timeout=timeout, binary=binary, max_message_bytes=max_message_bytes,
            api_key=api_key, tls=tls, aio=True,
        )  # fmt: skip
        self.timeout = timeout
        self.retry = retry or Retry()
        self._metadata = transport.metadata
        self._protocol: HttpProtocol | GrpcProtocol = transport.protocol
        self._http: httpx.AsyncClient | None = transport.http
        self._channel: grpc.aio.Channel | None = transport.channel

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections."""
        if self._http is not None:
            await self._http.aclose()
        if self._channel is not None:
            await self._channel.close()

    async def live(self) -> bool:
        return await self._run(self._protocol.live())

    async def ready(self) -> bool:
        return await self._run(self._protocol.ready())

    async def server_metadata(self) -> dict[str, Any]:
        return await self._run(self._protocol.server_metadata())

    async def model_metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        return await self._run(self._protocol.model_metadata(model, version))

    async def model_ready(self, model: str, version: str | None = None) -> bool:
        return await self._run(self._protocol.model_ready(model, version))

    async def model_config(self, model: str, version: str | None = None) -> dict[str, Any]:
        return await self._run(self._protocol.model_config(model, version))

    async def statistics(
        self, model: str | None = None, version: str | None = None
    ) -> dict[str, Any]:
        return await self._run(self._protocol.statistics(model, version))

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        *,
        version: str | None = None,
        outputs: Sequence[str] | None = None,
        request_id: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        # The same keyword as Client.infer; it becomes the gRPC deadline the server honours.
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> InferResult:
        """Run one inference request; see :meth:`Client.infer`."""
        call = self._protocol.infer(model, inputs, version, outputs, request_id, parameters)
        return await self._run(call, timeout)

    async def infer_many(
        self,
        model: str,
        requests: Sequence[Mapping[str, np.ndarray]],
        *,
        version: str | None = None,
        outputs: Sequence[str] | None = None,
        parameters: Mapping[str, Any] | None = None,
        return_exceptions: bool = False,
        concurrency: int = 8,
        timeout: float | None = None,  # noqa: ASYNC109 - the same keyword as Client.infer_many
    ) -> list[InferResult | ClientError]:
        """Run many inference requests at once; see :meth:`Client.infer_many`."""
        if isinstance(self._protocol, GrpcProtocol) and self._channel is not None:
            messages = stream_requests(self._protocol, model, requests, version, outputs,
                                       parameters)  # fmt: skip
            stream = self._channel.stream_stream(STREAM_METHOD, **STREAM_CODECS)
            answers: list[InferResult | ClientError | None] = [None] * len(messages)
            seconds = self.timeout if timeout is None else timeout
            try:
                call = stream(iter(messages), timeout=seconds, metadata=self._metadata)
                async for msg in call:
                    index, answer = stream_result(msg)
                    answers[index] = answer
            except grpc.RpcError as err:
                raise error_from_grpc(err) from None
            results = complete(answers)
        else:
            slots: list[InferResult | ClientError | None] = [None] * len(requests)
            pending = iter(enumerate(requests))  # shared: each request is taken once

            async def worker() -> None:
                for index, inputs in pending:
                    try:
                        slots[index] = await self.infer(
                            model, inputs, version=version, outputs=outputs,
                            parameters=parameters, timeout=timeout,
                        )  # fmt: skip
                    except ClientError as err:
                        slots[index] = err

            # A few workers pulling from one iterator, not one task per request: thousands
            # of tasks queued on a semaphore cost more than the calls themselves.
            await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(slots))))))
            results = complete(slots)
        return results if return_exceptions else raise_first(results)

    async def repository_index(self) -> list[dict[str, Any]]:
        return await self._run(self._protocol.repository_index())

    async def load_model(self, model: str) -> None:
        await self._run(self._protocol.load_model(model))

    async def unload_model(self, model: str) -> None:
        await self._run(self._protocol.unload_model(model))

    async def management(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> Any:
        """Call any management endpoint: ``path`` is relative to ``/v1``.

        Example: ``client.management("GET", "models")``. The typed methods below cover the
        registry, jobs and keys; this reaches anything else.
        """
        return await self._manage(MANAGE.call(method, path, body, frozenset({200, 201, 204})))

    async def list_models(
        self, *, tag: str | None = None, stage: str | None = None, query: str | None = None
    ) -> list[ModelInfo]:
        """Registered models; filter by tag, by a stage one of their versions is in, or by a
        substring of name or description."""
        return await self._manage(MANAGE.list_models(tag, stage, query))

    async def get_model(self, name: str) -> ModelInfo:
        """A model with its versions and this replica's state of each (``served``)."""
        return await self._manage(MANAGE.get_model(name))

    async def update_model(
        self, name: str, *, description: str | None = None, tags: Sequence[str] | None = None,
        gates: Sequence[str] | None = None, config: Mapping[str, Any] | None = None,
    ) -> ModelInfo:  # fmt: skip
        """Change a model's description, tags, promotion gates (``"accuracy >= 0.9"``) or
        config (model.yaml as a mapping); only the arguments given change."""
        changes = {"description": description, "tags": tags, "gates": gates, "config": config}
        given = {k: (list(v) if k in ("tags", "gates") else v) for k, v in changes.items()
                 if v is not None}  # fmt: skip
        return await self._manage(MANAGE.update_model(name, given))

    async def delete_model(self, name: str) -> None:
        """Delete a model and its versions (refused while a version is in production)."""
        await self._manage(MANAGE.delete_model(name))

    async def list_versions(self, name: str, *, stage: str | None = None) -> list[VersionInfo]:
        """A model's versions, oldest first; only those in ``stage`` when given."""
        return await self._manage(MANAGE.list_versions(name, stage))

    async def get_version(self, name: str, version: int) -> VersionInfo:
        """One version's record: artifact, digest, stage, status, metrics."""
        return await self._manage(MANAGE.get_version(name, version))

    async def register_version(
        self, name: str, artifact_uri: str, *, version: int | None = None,
        metadata: Mapping[str, Any] | None = None, stage: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> VersionInfo:  # fmt: skip
        """Register an artifact (a path or fsspec URI) as a new version; ``config`` creates
        the model when it does not exist yet."""
        body = {"artifact_uri": artifact_uri, "version": version, "metadata": metadata,
                "stage": stage, "config": config}  # fmt: skip
        return await self._manage(MANAGE.register_version(name, {k: v for k, v in body.items()
                                                            if v is not None}))  # fmt: skip

    async def update_version(self, name: str, version: int, **metadata: Any) -> VersionInfo:
        """Change a version's metrics, tags, description, training info, signature or pin."""
        return await self._manage(MANAGE.update_version(name, version, metadata))

    async def delete_version(self, name: str, version: int) -> None:
        """Delete a version (refused while it is in production)."""
        await self._manage(MANAGE.delete_version(name, version))

    async def promote(self, name: str, version: int) -> VersionInfo:
        """Make ``version`` production: gates checked, loaded and warmed, then swapped in with
        no failed request; the old version drains."""
        return await self._manage(MANAGE.promote(name, version))

    async def set_stage(self, name: str, version: int, stage: str) -> VersionInfo:
        """Move a version to ``registered``, ``staging``, ``production`` or ``archived``."""
        return await self._manage(MANAGE.set_stage(name, version, stage))

    async def rollback(self, name: str) -> VersionInfo:
        """Return production to the previous production version (the same hot swap)."""
        return await self._manage(MANAGE.rollback(name))

    async def audit(self, name: str | None = None, *, limit: int = 100) -> list[AuditInfo]:
        """The audit log, newest first: every model's, or one model's."""
        return await self._manage(MANAGE.audit(name, limit))

    async def model_metrics(self, name: str, *, minutes: float | None = None) -> dict[str, Any]:
        """Request rate, p50/p95/p99 latency (ms) and error rate of the model and of each
        version over the last ``minutes`` (default 5, at most 60), every worker counted."""
        return await self._manage(MANAGE.model_metrics(name, minutes))

    async def submit_job(self, spec: Mapping[str, Any]) -> JobInfo:
        """Queue a batch inference job (docs/jobs.md: model, inputs, output, ...)."""
        return await self._manage(MANAGE.submit_job(spec))

    async def get_job(self, job_id: str) -> JobInfo:
        """A job with its progress, throughput and ETA."""
        return await self._manage(MANAGE.get_job(job_id))

    async def list_jobs(self, *, state: str | None = None, limit: int = 100) -> list[JobInfo]:
        """Jobs, newest first; only those in ``state`` when given."""
        return await self._manage(MANAGE.list_jobs(state, limit))

    async def cancel_job(self, job_id: str) -> JobInfo:
        """Cancel a queued job, or stop a running one after its current chunk."""
        return await self._manage(MANAGE.cancel_job(job_id))

    async def resume_job(self, job_id: str) -> JobInfo:
        """Queue a failed or cancelled job again; it skips the chunks already done."""
        return await self._manage(MANAGE.resume_job(job_id))

    async def publish_job(
        self, job_id: str, key: str, *, store: str = "db", max_age: str | float | None = None,
        model: str | None = None, version: int | None = None,
    ) -> TableInfo:  # fmt: skip
        """Publish a succeeded job's output as its version's precomputed table, keyed by the
        passthrough column ``key`` (docs/resilience.md); ``max_age`` like ``"1d"``."""
        body = publish_body(key, store, max_age, model, version)
        return await self._manage(MANAGE.publish_job(job_id, body))

    async def published_table(self, job_id: str) -> TableInfo:
        """The precomputed table published from a job: state, rows, age."""
        return await self._manage(MANAGE.published_table(job_id))

    async def unpublish_job(self, job_id: str) -> TableInfo:
        """Remove the tables published from a job; its version answers online again."""
        return await self._manage(MANAGE.unpublish_job(job_id))

    async def create_key(
        self, role: str, *, models: Sequence[str] | None = None, name: str = ""
    ) -> KeyInfo:
        """Create an API key (admin); the answer's ``key`` is the secret, shown only now."""
        return await self._manage(MANAGE.create_key(role, models, name))

    async def list_keys(self, *, revoked: bool = False) -> list[KeyInfo]:
        """API keys (admin), never their secrets; revoked ones too when asked."""
        return await self._manage(MANAGE.list_keys(revoked))

    async def revoke_key(self, key_id: str) -> KeyInfo:
        """Revoke a key at once (admin)."""
        return await self._manage(MANAGE.revoke_key(key_id))

    async def create_experiment(self, spec: Mapping[str, Any]) -> ExperimentInfo:
        """Create a draft A/B/n experiment (docs/experiments.md: model, variants, unit, ...)."""
        return await self._manage(MANAGE.create_experiment(spec))

    async def list_experiments(
        self, *, model: str | None = None, state: str | None = None
    ) -> list[ExperimentInfo]:
        """Experiments, newest first, optionally of one model or in one state."""
        return await self._manage(MANAGE.list_experiments(model, state))

    async def get_experiment(self, exp_id: str) -> ExperimentInfo:
        """An experiment's definition, state and weights."""
        return await self._manage(MANAGE.get_experiment(exp_id))

    async def experiment_action(self, exp_id: str, action: str, **body: Any) -> ExperimentInfo:
        """``start``, ``pause``, ``resume``, ``stop`` (reason=), ``conclude`` (winner=,
        reason=: the winner's version is promoted) or ``weights`` (weights=[...])."""
        return await self._manage(MANAGE.experiment_action(exp_id, action, body))

    async def experiment_results(self, exp_id: str) -> dict[str, Any]:
        """Per-variant counts, effects with intervals, p-values, sample size, SRM check."""
        return await self._manage(MANAGE.experiment_results(exp_id))

    async def post_outcomes(
        self, exp_id: str, outcomes: Sequence[Mapping[str, Any]]
    ) -> dict[str, int]:
        """Attach outcomes ({"unit_id" or "request_id", "kind", "value" or "label"})."""
        return await self._manage(MANAGE.post_outcomes(exp_id, outcomes))

    async def create_rollout(self, spec: Mapping[str, Any]) -> RolloutInfo:
        """Create a canary rollout (docs/rollouts.md: model, candidate, steps, guardrails);
        the server's controller starts it and moves it on by itself."""
        return await self._manage(MANAGE.create_rollout(spec))

    async def list_rollouts(
        self, model: str | None = None, state: str | None = None
    ) -> list[RolloutInfo]:
        """Rollouts, newest first, optionally of one model or in one state."""
        return await self._manage(MANAGE.list_rollouts(model, state))

    async def get_rollout(self, rollout_id: str) -> RolloutInfo:
        """A rollout's definition, state, step, canary share and history."""
        return await self._manage(MANAGE.get_rollout(rollout_id))

    async def rollout_action(self, rollout_id: str, action: str, **body: Any) -> RolloutInfo:
        """``pause``, ``resume``, ``advance`` (the last step promotes) or ``abort`` (reason=)."""
        return await self._manage(MANAGE.rollout_action(rollout_id, action, body))

    async def rollout_status(self, rollout_id: str) -> dict[str, Any]:
        """The current step's per-arm metrics, the guardrails' verdict and the next move."""
        return await self._manage(MANAGE.rollout_status(rollout_id))

    async def set_shadow(
        self, model: str, version: int, fraction: float, *, queue_size: int | None = None
    ) -> ShadowInfo:
        """Mirror ``fraction`` (0..1) of ``model``'s answered requests to ``version``, after
        the client has its answer (operator); replaces any shadow the model had."""
        return await self._manage(MANAGE.set_shadow(model, version, fraction, queue_size))

    async def get_shadow(self, model: str) -> ShadowInfo:
        """The model's shadow target (404 as ClientError when it has none)."""
        return await self._manage(MANAGE.get_shadow(model))

    async def delete_shadow(self, model: str) -> ShadowInfo:
        """Stop mirroring (operator); the agreement stays readable."""
        return await self._manage(MANAGE.delete_shadow(model))

    async def shadow_results(self, model: str) -> dict[str, Any]:
        """Agreement per (primary, shadow) version pair: exact-match rate, mean absolute
        difference, shadow latency, drops and failures, merged across every process."""
        return await self._manage(MANAGE.shadow_results(model))

    async def drift(
        self, model: str, version: int | None = None, *, refresh: bool = True
    ) -> dict[str, Any]:
        """A model's drift per watched version: the tests, PSI and the verdict, checked now
        (``refresh=False``: the latest stored check when it is recent)."""
        return await self._manage(MANAGE.model_drift(model, version, refresh))

    async def list_alerts(
        self, rule: str | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """Active alerts (pending, firing), the history of fired ones (newest first, at most
        ``limit``) and the server's rules, as ``GET /v1/alerts`` answers (docs/alerts.md)."""
        return await self._manage(MANAGE.list_alerts(rule, limit))

    async def drift_settings(self, model: str) -> dict[str, Any]:
        """The model's drift settings (sample_rate, alpha, correction, psi_threshold, ...)."""
        return await self._manage(MANAGE.drift_settings(model))

    async def set_drift_settings(self, model: str, **changes: Any) -> dict[str, Any]:
        """Change some drift settings of a model; the others are kept."""
        return await self._manage(MANAGE.set_drift_settings(model, changes))

    async def set_reference(
        self, model: str, version: int, reference: str | Mapping[str, Sequence[Any]],
        *, categorical: Sequence[str] = (),
    ) -> dict[str, Any]:  # fmt: skip
        """Set a version's drift reference from a .csv/.parquet file or columns (profiled
        here; outputs are recognised by name)."""
        body = reference_body(reference, categorical)
        return await self._manage(MANAGE.set_reference(model, version, body))

    async def get_reference(self, model: str, version: int) -> dict[str, Any]:
        """A summary of a version's drift reference profile."""
        return await self._manage(MANAGE.get_reference(model, version))

    async def wait_for_job(
        self,
        job_id: str,
        *,
        timeout: float = 3600.0,  # noqa: ASYNC109 - the same keyword as Client.wait_for_job
        poll: float = 1.0,
    ) -> JobInfo:
        """Poll until the job ended; see :meth:`Client.wait_for_job`."""
        deadline = time.monotonic() + timeout
        while True:
            job = await self.get_job(job_id)
            if job.get("state") in JOB_DONE:
                return job
            if time.monotonic() >= deadline:
                raise ClientError(f"job {job_id} still {job.get('state')} after {timeout} s",
                                  status=None, code="DEADLINE_EXCEEDED")  # fmt: skip
            await asyncio.sleep(poll)

    async def _manage(self, call: HttpCall[T]) -> T:
        if self._http is None:
            raise ClientError("management calls need an http:// or https:// URL",
                              status=None, code="UNIMPLEMENTED")  # fmt: skip
        return await self._run(call)

    async def _run(self, call: HttpCall[T] | GrpcCall[T], limit_s: float | None = None) -> T:
        seconds = self.timeout if limit_s is None else limit_s
        attempt = 1
        while True:
            try:
                return await self._send(call, seconds)
            except ClientError as err:
                if not err.retryable or attempt >= self.retry.attempts:
                    raise
                await asyncio.sleep(self.retry.delay(attempt, err))
                attempt += 1

    async def _send(self, call: HttpCall[T] | GrpcCall[T], seconds: float) -> T:
        if isinstance(call, GrpcCall) and self._channel is not None:
            stub = self._channel.unary_unary(
                call.method,
                request_serializer=type(call.request).SerializeToString,
                response_deserializer=call.response_type.FromString,
            )
            try:
                answer = await stub(call.request, timeout=seconds, metadata=self._metadata)
                return call.parse(answer)
            except grpc.RpcError as err:
                raise error_from_grpc(err) from None
        if isinstance(call, HttpCall) and self._http is not None:
            try:
                response = await self._http.request(
                    call.method, call.path, content=call.body, headers=call.headers,
                    timeout=seconds,
                )  # fmt: skip
            except httpx.TransportError as err:
                raise error_from_transport(err, seconds) from err
            return read_http(call, response)
        raise TypeError(f"{type(call).__name__} does not fit this client's protocol")
