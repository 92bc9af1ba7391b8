"""The blocking client: :class:`Client`.

Past 500 lines because :class:`Client` is the SDK's one public surface: every management
area (models, experiments, rollouts, shadow, drift, alerts, jobs, keys) is a few thin
methods over the shared request helpers in :mod:`inferd.client._manage`, kept on one class
so that ``help(Client)`` lists them all.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
import httpx
import numpy as np

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
    ManagementCalls,
    ModelInfo,
    RolloutInfo,
    ShadowInfo,
    TableInfo,
    VersionInfo,
    publish_body,
    reference_body,
)
from inferd.client._transport import Tls, open_transport
from inferd.client._types import ClientError, InferResult, Retry, grpc_error, http_error

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 60.0
MANAGE = ManagementCalls()


def error_from_http(response: httpx.Response) -> ClientError:
    try:
        message = str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        message = response.text[:200] or response.reason_phrase
    return http_error(response.status_code, message, response.headers.get("retry-after"))


def error_from_transport(err: httpx.TransportError, timeout: float) -> ClientError:
    """No HTTP answer: a timeout, or a connection that failed (retryable)."""
    if isinstance(err, httpx.TimeoutException):
        return ClientError(f"no answer within {timeout} s", status=None, code="DEADLINE_EXCEEDED")
    return ClientError(f"{type(err).__name__}: {err}", status=None, code="UNAVAILABLE")


def read_http(call: HttpCall[T], response: httpx.Response) -> T:
    """The parsed answer, or the error it carries."""
    if response.status_code not in call.accept:
        raise error_from_http(response)
    return call.parse(response.status_code, response.content, response.headers)


def error_from_grpc(err: grpc.RpcError) -> ClientError:
    code = err.code().name if hasattr(err, "code") else "UNKNOWN"
    details = err.details() if hasattr(err, "details") else str(err)
    trailers: Any = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    retry_after = next((str(v) for k, v in trailers or () if k == "retry-after"), None)
    return grpc_error(code, details or code, retry_after)


class Client:
    """A blocking client for inferd (and any Open Inference Protocol server) over HTTP or gRPC.

    Arrays go in and come out as numpy; HTTP uses binary tensors unless ``binary=False``.
    Calls refused as unavailable (503 / UNAVAILABLE: overload, draining, loading; 502: a
    gateway lost the replica; no answer: connection refused or reset) are retried
    with exponential backoff per ``retry``; other errors raise :class:`ClientError` at once.

    Args:
        url: ``http://host:8000`` or ``grpc://host:8001`` (``https://`` and ``grpcs://`` for
            TLS).
        timeout: seconds per call unless a call says otherwise.
        retry: the retry policy (``Retry(attempts=1)`` turns retries off).
        binary: HTTP only: binary tensor extension (default) or JSON.
        max_message_bytes: gRPC only: largest message sent or received.
        api_key: API key sent with every call (``Authorization: Bearer``, gRPC metadata
            ``authorization``); default ``$INFERD_API_KEY``. A JWT works the same way.
        tls: the CA to trust and the client certificate (mTLS) for ``https://`` and
            ``grpcs://``; None: the system trust store and no client certificate.

    Example:
        >>> with Client("grpc://localhost:8001") as client:
        ...     client.infer("linear", {"x": np.array([1, 2, 3], dtype=np.float32)})["y"]
        array([3., 5., 7.], dtype=float32)
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
            api_key=api_key, tls=tls, aio=False,
        )  # fmt: skip
        self.timeout = timeout
        self.retry = retry or Retry()
        self._metadata = transport.metadata
        self._protocol: HttpProtocol | GrpcProtocol = transport.protocol
        self._http: httpx.Client | None = transport.http
        self._channel: grpc.Channel | None = transport.channel

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        if self._http is not None:
            self._http.close()
        if self._channel is not None:
            self._channel.close()

    # -- Open Inference Protocol ---------------------------------------------------------------

    def live(self) -> bool:
        """Whether the server is live."""
        return self._run(self._protocol.live())

    def ready(self) -> bool:
        """Whether the server is ready (its start-up load finished)."""
        return self._run(self._protocol.ready())

    def server_metadata(self) -> dict[str, Any]:
        """``{"name", "version", "extensions"}``."""
        return self._run(self._protocol.server_metadata())

    def model_metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        """The model's V2 metadata: name, versions, platform, inputs, outputs."""
        return self._run(self._protocol.model_metadata(model, version))

    def model_ready(self, model: str, version: str | None = None) -> bool:
        """Whether the model (or that version) can take requests; False when unknown."""
        return self._run(self._protocol.model_ready(model, version))

    def model_config(self, model: str, version: str | None = None) -> dict[str, Any]:
        """The model's configuration in Triton's ``model_config`` shape."""
        return self._run(self._protocol.model_config(model, version))

    def statistics(self, model: str | None = None, version: str | None = None) -> dict[str, Any]:
        """Triton-style statistics (``{"model_stats": [...]}``) of one model or all."""
        return self._run(self._protocol.statistics(model, version))

    def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        *,
        version: str | None = None,
        outputs: Sequence[str] | None = None,
        request_id: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> InferResult:
        """Run one inference request.

        Args:
            model: the model name.
            inputs: input name -> array; the datatype follows the array's dtype (str, bytes
                and object arrays are BYTES).
            version: a version number, or None for the model's default version.
            outputs: the outputs to return, or None for all of them.
            request_id: an id the server echoes back.
            parameters: V2 request parameters, e.g. ``{"priority": 1}``.
            timeout: seconds for this call (default: the client's).

        Raises:
            ClientError: the server refused the request (e.g. ``INVALID_ARGUMENT`` naming the
                input), or retries ran out.
        """
        call = self._protocol.infer(model, inputs, version, outputs, request_id, parameters)
        return self._run(call, timeout)

    def infer_many(
        self,
        model: str,
        requests: Sequence[Mapping[str, np.ndarray]],
        *,
        version: str | None = None,
        outputs: Sequence[str] | None = None,
        parameters: Mapping[str, Any] | None = None,
        return_exceptions: bool = False,
        concurrency: int = 8,
        timeout: float | None = None,
    ) -> list[InferResult | ClientError]:
        """Run many inference requests at once; the answers come in the order of ``requests``.

        Over gRPC every request goes on one ``ModelStreamInfer`` stream: no per-call cost,
        and the server batches them together (the fastest way to send many requests). Over
        HTTP they are sent ``concurrency`` at a time.

        Args:
            model: the model name.
            requests: one mapping of input name -> array per request.
            version, outputs, parameters: as for :meth:`infer`, the same for every request.
            return_exceptions: put each failed request's :class:`ClientError` in its place
                instead of raising the first one.
            concurrency: HTTP only: requests in flight at once.
            timeout: seconds for the whole stream (gRPC) or for each call (HTTP).

        Raises:
            ClientError: a request failed (unless ``return_exceptions``), or the stream broke.
        """
        if isinstance(self._protocol, GrpcProtocol) and self._channel is not None:
            messages = stream_requests(self._protocol, model, requests, version, outputs,
                                       parameters)  # fmt: skip
            stream = self._channel.stream_stream(STREAM_METHOD, **STREAM_CODECS)
            answers: list[InferResult | ClientError | None] = [None] * len(messages)
            seconds = self.timeout if timeout is None else timeout
            try:
                for msg in stream(iter(messages), timeout=seconds, metadata=self._metadata):
                    index, answer = stream_result(msg)
                    answers[index] = answer
            except grpc.RpcError as err:
                raise error_from_grpc(err) from None
            results = complete(answers)
        else:

            def one(inputs: Mapping[str, np.ndarray]) -> InferResult | ClientError:
                try:
                    return self.infer(model, inputs, version=version, outputs=outputs,
                                      parameters=parameters, timeout=timeout)  # fmt: skip
                except ClientError as err:
                    return err

            with ThreadPoolExecutor(max(1, concurrency)) as pool:
                results = list(pool.map(one, requests))
        return results if return_exceptions else raise_first(results)

    # -- repository --------------------------------------------------------------

    def repository_index(self) -> list[dict[str, Any]]:
        """Every model and version with its state (and failure reason)."""
        return self._run(self._protocol.repository_index())

    def load_model(self, model: str) -> None:
        """(Re)load a model from the repository."""
        self._run(self._protocol.load_model(model))

    def unload_model(self, model: str) -> None:
        """Drain and unload every version of a model."""
        self._run(self._protocol.unload_model(model))

    def management(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Call any management endpoint: ``path`` is relative to ``/v1``.

        Example: ``client.management("GET", "models")``. The typed methods below cover the
        registry, jobs and keys; this reaches anything else.
        """
        return self._manage(MANAGE.call(method, path, body, frozenset({200, 201, 204})))

    def list_models(
        self, *, tag: str | None = None, stage: str | None = None, query: str | None = None
    ) -> list[ModelInfo]:
        """Registered models; filter by tag, by a stage one of their versions is in, or by a
        substring of name or description."""
        return self._manage(MANAGE.list_models(tag, stage, query))

    def get_model(self, name: str) -> ModelInfo:
        """A model with its versions and this replica's state of each (``served``)."""
        return self._manage(MANAGE.get_model(name))

    def update_model(
        self, name: str, *, description: str | None = None, tags: Sequence[str] | None = None,
        gates: Sequence[str] | None = None, config: Mapping[str, Any] | None = None,
    ) -> ModelInfo:  # fmt: skip
        """Change a model's description, tags, promotion gates (``"accuracy >= 0.9"``) or
        config (model.yaml as a mapping); only the arguments given change."""
        changes = {"description": description, "tags": tags, "gates": gates, "config": config}
        given = {k: (list(v) if k in ("tags", "gates") else v) for k, v in changes.items()
                 if v is not None}  # fmt: skip
        return self._manage(MANAGE.update_model(name, given))

    def delete_model(self, name: str) -> None:
        """Delete a model and its versions (refused while a version is in production)."""
        self._manage(MANAGE.delete_model(name))

    def list_versions(self, name: str, *, stage: str | None = None) -> list[VersionInfo]:
        """A model's versions, oldest first; only those in ``stage`` when given."""
        return self._manage(MANAGE.list_versions(name, stage))

    def get_version(self, name: str, version: int) -> VersionInfo:
        """One version's record: artifact, digest, stage, status, metrics."""
        return self._manage(MANAGE.get_version(name, version))

    def register_version(
        self, name: str, artifact_uri: str, *, version: int | None = None,
        metadata: Mapping[str, Any] | None = None, stage: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> VersionInfo:  # fmt: skip
        """Register an artifact (a path or fsspec URI) as a new version; ``config`` creates
        the model when it does not exist yet."""
        body = {"artifact_uri": artifact_uri, "version": version, "metadata": metadata,
                "stage": stage, "config": config}  # fmt: skip
        return self._manage(MANAGE.register_version(name, {k: v for k, v in body.items()
                                                            if v is not None}))  # fmt: skip

    def update_version(self, name: str, version: int, **metadata: Any) -> VersionInfo:
        """Change a version's metrics, tags, description, training info, signature or pin."""
        return self._manage(MANAGE.update_version(name, version, metadata))

    def delete_version(self, name: str, version: int) -> None:
        """Delete a version (refused while it is in production)."""
        self._manage(MANAGE.delete_version(name, version))

    def promote(self, name: str, version: int) -> VersionInfo:
        """Make ``version`` production: gates checked, loaded and warmed, then swapped in with
        no failed request; the old version drains."""
        return self._manage(MANAGE.promote(name, version))

    def set_stage(self, name: str, version: int, stage: str) -> VersionInfo:
        """Move a version to ``registered``, ``staging``, ``production`` or ``archived``."""
        return self._manage(MANAGE.set_stage(name, version, stage))

    def rollback(self, name: str) -> VersionInfo:
        """Return production to the previous production version (the same hot swap)."""
        return self._manage(MANAGE.rollback(name))

    def audit(self, name: str | None = None, *, limit: int = 100) -> list[AuditInfo]:
        """The audit log, newest first: every model's, or one model's."""
        return self._manage(MANAGE.audit(name, limit))

    def model_metrics(self, name: str, *, minutes: float | None = None) -> dict[str, Any]:
        """Request rate, p50/p95/p99 latency (ms) and error rate of the model and of each
        version over the last ``minutes`` (default 5, at most 60), every worker counted."""
        return self._manage(MANAGE.model_metrics(name, minutes))

    def submit_job(self, spec: Mapping[str, Any]) -> JobInfo:
        """Queue a batch inference job (docs/jobs.md: model, inputs, output, ...)."""
        return self._manage(MANAGE.submit_job(spec))

    def get_job(self, job_id: str) -> JobInfo:
        """A job with its progress, throughput and ETA."""
        return self._manage(MANAGE.get_job(job_id))

    def list_jobs(self, *, state: str | None = None, limit: int = 100) -> list[JobInfo]:
        """Jobs, newest first; only those in ``state`` when given."""
        return self._manage(MANAGE.list_jobs(state, limit))

    def cancel_job(self, job_id: str) -> JobInfo:
        """Cancel a queued job, or stop a running one after its current chunk."""
        return self._manage(MANAGE.cancel_job(job_id))

    def resume_job(self, job_id: str) -> JobInfo:
        """Queue a failed or cancelled job again; it skips the chunks already done."""
        return self._manage(MANAGE.resume_job(job_id))

    def publish_job(
        self, job_id: str, key: str, *, store: str = "db", max_age: str | float | None = None,
        model: str | None = None, version: int | None = None,
    ) -> TableInfo:  # fmt: skip
        """Publish a succeeded job's output as its version's precomputed table, keyed by the
        passthrough column ``key`` (docs/resilience.md); ``max_age`` like ``"1d"``."""
        body = publish_body(key, store, max_age, model, version)
        return self._manage(MANAGE.publish_job(job_id, body))

    def published_table(self, job_id: str) -> TableInfo:
        """The precomputed table published from a job: state, rows, age."""
        return self._manage(MANAGE.published_table(job_id))

    def unpublish_job(self, job_id: str) -> TableInfo:
        """Remove the tables published from a job; its version answers online again."""
        return self._manage(MANAGE.unpublish_job(job_id))

    def create_key(
        self, role: str, *, models: Sequence[str] | None = None, name: str = ""
    ) -> KeyInfo:
        """Create an API key (admin); the answer's ``key`` is the secret, shown only now."""
        return self._manage(MANAGE.create_key(role, models, name))

    def list_keys(self, *, revoked: bool = False) -> list[KeyInfo]:
        """API keys (admin), never their secrets; revoked ones too when asked."""
        return self._manage(MANAGE.list_keys(revoked))

    def revoke_key(self, key_id: str) -> KeyInfo:
        """Revoke a key at once (admin)."""
        return self._manage(MANAGE.revoke_key(key_id))

    def create_experiment(self, spec: Mapping[str, Any]) -> ExperimentInfo:
        """Create a draft A/B/n experiment (docs/experiments.md: model, variants, unit, ...)."""
        return self._manage(MANAGE.create_experiment(spec))

    def list_experiments(
        self, *, model: str | None = None, state: str | None = None
    ) -> list[ExperimentInfo]:
        """Experiments, newest first, optionally of one model or in one state."""
        return self._manage(MANAGE.list_experiments(model, state))

    def get_experiment(self, exp_id: str) -> ExperimentInfo:
        """An experiment's definition, state and weights."""
        return self._manage(MANAGE.get_experiment(exp_id))

    def experiment_action(self, exp_id: str, action: str, **body: Any) -> ExperimentInfo:
        """``start``, ``pause``, ``resume``, ``stop`` (reason=), ``conclude`` (winner=,
        reason=: the winner's version is promoted) or ``weights`` (weights=[...])."""
        return self._manage(MANAGE.experiment_action(exp_id, action, body))

    def experiment_results(self, exp_id: str) -> dict[str, Any]:
        """Per-variant counts, effects with intervals, p-values, sample size, SRM check."""
        return self._manage(MANAGE.experiment_results(exp_id))

    def post_outcomes(self, exp_id: str, outcomes: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        """Attach outcomes ({"unit_id" or "request_id", "kind", "value" or "label"})."""
        return self._manage(MANAGE.post_outcomes(exp_id, outcomes))

    def create_rollout(self, spec: Mapping[str, Any]) -> RolloutInfo:
        """Create a canary rollout (docs/rollouts.md: model, candidate, steps, guardrails);
        the server's controller starts it and moves it on by itself."""
        return self._manage(MANAGE.create_rollout(spec))

    def list_rollouts(
        self, model: str | None = None, state: str | None = None
    ) -> list[RolloutInfo]:
        """Rollouts, newest first, optionally of one model or in one state."""
        return self._manage(MANAGE.list_rollouts(model, state))

    def get_rollout(self, rollout_id: str) -> RolloutInfo:
        """A rollout's definition, state, step, canary share and history."""
        return self._manage(MANAGE.get_rollout(rollout_id))

    def rollout_action(self, rollout_id: str, action: str, **body: Any) -> RolloutInfo:
        """``pause``, ``resume``, ``advance`` (the last step promotes) or ``abort`` (reason=)."""
        return self._manage(MANAGE.rollout_action(rollout_id, action, body))

    def rollout_status(self, rollout_id: str) -> dict[str, Any]:
        """The current step's per-arm metrics, the guardrails' verdict and the next move."""
        return self._manage(MANAGE.rollout_status(rollout_id))

    def set_shadow(
        self, model: str, version: int, fraction: float, *, queue_size: int | None = None
    ) -> ShadowInfo:
        """Mirror ``fraction`` (0..1) of ``model``'s answered requests to ``version``, after
        the client has its answer (operator); replaces any shadow the model had."""
        return self._manage(MANAGE.set_shadow(model, version, fraction, queue_size))

    def get_shadow(self, model: str) -> ShadowInfo:
        """The model's shadow target (404 as ClientError when it has none)."""
        return self._manage(MANAGE.get_shadow(model))

    def delete_shadow(self, model: str) -> ShadowInfo:
        """Stop mirroring (operator); the agreement stays readable."""
        return self._manage(MANAGE.delete_shadow(model))

    def shadow_results(self, model: str) -> dict[str, Any]:
        """Agreement per (primary, shadow) version pair: exact-match rate, mean absolute
        difference, shadow latency, drops and failures, merged across every process."""
        return self._manage(MANAGE.shadow_results(model))

    def drift(
        self, model: str, version: int | None = None, *, refresh: bool = True
    ) -> dict[str, Any]:
        """A model's drift per watched version: the tests, PSI and the verdict, checked now
        (``refresh=False``: the latest stored check when it is recent)."""
        return self._manage(MANAGE.model_drift(model, version, refresh))

    def list_alerts(self, rule: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """Active alerts (pending, firing), the history of fired ones (newest first, at most
        ``limit``) and the server's rules, as ``GET /v1/alerts`` answers (docs/alerts.md)."""
        return self._manage(MANAGE.list_alerts(rule, limit))

    def drift_settings(self, model: str) -> dict[str, Any]:
        """The model's drift settings (sample_rate, alpha, correction, psi_threshold, ...)."""
        return self._manage(MANAGE.drift_settings(model))

    def set_drift_settings(self, model: str, **changes: Any) -> dict[str, Any]:
        """Change some drift settings of a model; the others are kept."""
        return self._manage(MANAGE.set_drift_settings(model, changes))

    def set_reference(
        self, model: str, version: int, reference: str | Mapping[str, Sequence[Any]],
        *, categorical: Sequence[str] = (),
    ) -> dict[str, Any]:  # fmt: skip
        """Set a version's drift reference from a .csv/.parquet file or columns (profiled
        here; outputs are recognised by name)."""
        body = reference_body(reference, categorical)
        return self._manage(MANAGE.set_reference(model, version, body))

    def get_reference(self, model: str, version: int) -> dict[str, Any]:
        """A summary of a version's drift reference profile."""
        return self._manage(MANAGE.get_reference(model, version))

    def wait_for_job(self, job_id: str, *, timeout: float = 3600.0, poll: float = 1.0) -> JobInfo:
        """Poll until the job succeeded, failed or was cancelled; return its last record.

        Raises:
            ClientError: DEADLINE_EXCEEDED when ``timeout`` seconds pass first.
        """
        deadline = time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if job.get("state") in JOB_DONE:
                return job
            if time.monotonic() >= deadline:
                raise ClientError(f"job {job_id} still {job.get('state')} after {timeout} s",
                                  status=None, code="DEADLINE_EXCEEDED")  # fmt: skip
            time.sleep(poll)

    def _manage(self, call: HttpCall[T]) -> T:
        if self._http is None:
            raise ClientError("management calls need an http:// or https:// URL",
                              status=None, code="UNIMPLEMENTED")  # fmt: skip
        return self._run(call)

    # -- sending ------------------------------------------------------------------------------

    def _run(self, call: HttpCall[T] | GrpcCall[T], timeout: float | None = None) -> T:
        seconds = self.timeout if timeout is None else timeout
        attempt = 1
        while True:
            try:
                return self._send(call, seconds)
            except ClientError as err:
                if not err.retryable or attempt >= self.retry.attempts:
                    raise
                time.sleep(self.retry.delay(attempt, err))
                attempt += 1

    def _send(self, call: HttpCall[T] | GrpcCall[T], timeout: float) -> T:
        if isinstance(call, GrpcCall) and self._channel is not None:
            stub = self._channel.unary_unary(
                call.method,
                request_serializer=type(call.request).SerializeToString,
                response_deserializer=call.response_type.FromString,
            )
            try:
                return call.parse(stub(call.request, timeout=timeout, metadata=self._metadata))
            except grpc.RpcError as err:
                raise error_from_grpc(err) from None
        if isinstance(call, HttpCall) and self._http is not None:
            try:
                response = self._http.request(
                    call.method, call.path, content=call.body, headers=call.headers,
                    timeout=timeout,
                )  # fmt: skip
            except httpx.TransportError as err:
                raise error_from_transport(err, timeout) from err
            return read_http(call, response)
        raise TypeError(f"{type(call).__name__} does not fit this client's protocol")


def complete(answers: list[InferResult | ClientError | None]) -> list[InferResult | ClientError]:
    """Stream answers in request order; a request the server never answered is an error."""
    missing = [i for i, a in enumerate(answers) if a is None]
    if missing:
        raise ClientError(f"the stream ended without answers for {len(missing)} requests "
                          f"(first: #{missing[0]})", status=None, code="UNKNOWN")  # fmt: skip
    return [a for a in answers if a is not None]


def raise_first(results: list[InferResult | ClientError]) -> list[InferResult | ClientError]:
    """``results`` unchanged when none failed; else raise the first failure."""
    for index, result in enumerate(results):
        if isinstance(result, ClientError):
            raise ClientError(f"request #{index}: {result.message}", status=result.status,
                              code=result.code, retry_after_s=result.retry_after_s)  # fmt: skip
    return results
