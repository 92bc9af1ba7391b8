"""The data plane: what every transport (REST, gRPC) calls, in wire-free terms.

Transports decode, call one method here, and encode. Metrics and statistics are recorded
here, once, whatever the protocol.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

from inferd import __version__
from inferd.batching.pack import Pack, pack
from inferd.errors import InferdError, InferenceFailed, ModelNotFound, ModelNotReady
from inferd.monitoring import Metrics
from inferd.monitoring.drift_sampler import DriftSampler
from inferd.monitoring.prediction_log import PredictionLog
from inferd.preprocess import model_inputs
from inferd.resilience.admission import Admission
from inferd.resilience.layer import Resilience
from inferd.serving.control import ModelControl
from inferd.serving.load import QueueGate
from inferd.serving.manager import ModelManager, ModelVersion, VersionState
from inferd.traffic.policy import Route, TrafficPolicy
from inferd.types import InferenceRequest, InferenceResponse

logger = logging.getLogger(__name__)

EXTENSIONS = ["binary_tensor_data", "model_repository", "statistics", "schedule_policy"]

# Triton's platform/backend names, which perf_analyzer and tritonclient expect in /config.
_TRITON_PLATFORM = {
    "onnx": ("onnxruntime_onnx", "onnxruntime"),
    "torchscript": ("pytorch_libtorch", "pytorch"),
    "torch_export": ("torch_export", "pytorch"),
    "tensorflow": ("tensorflow_savedmodel", "tensorflow"),
    "python": ("python", "python"),
}


class DataPlane:
    """Inference, metadata, readiness, statistics and repository control.

    Args:
        manager: the model manager holding loaded versions.
        metrics: the server's metrics.
        control: the model control (registry reconciler, on-demand loads); None serves only
            what the manager holds (tests).
        traffic: experiment routing; None routes nothing.
    """

    def __init__(
        self, manager: ModelManager, metrics: Metrics, control: ModelControl | None = None,
        traffic: TrafficPolicy | None = None,
    ) -> None:  # fmt: skip
        self.manager = manager
        self.metrics = metrics
        self.control = control
        self.traffic = traffic or TrafficPolicy(None)
        self.traffic.shadow.runner = self._run_shadow
        self.drift: DriftSampler | None = None  # drift sampling, set by the app
        self.prediction_log: PredictionLog | None = None  # set by the app when configured
        self.resilience: Resilience | None = None  # cache, breakers, fallbacks; set by the app
        self.admission: Admission | None = None  # overload control; set by the app
        self.queue_gate: QueueGate | None = None  # readiness on queue depth; set by the app
        self._started = False
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> dict[str, str]:
        """Load the desired state; return the problems by model (or model/version)."""
        # Routing state before any model loads: models answer as soon as each is loaded, and
        # none may answer unrouted while an experiment runs (the tables may be new: migrate).
        if self.control is not None:
            await asyncio.to_thread(self.control.registry.migrate)
        await asyncio.to_thread(self.traffic.refresh)
        problems = await self.control.start() if self.control is not None else {}
        self._started = True
        return problems

    async def stop(self) -> None:
        """Drain queued and running requests of every model, then unload them."""
        self._stopping = True
        await self.manager.close()

    # -- health and metadata -----------------------------------------------------------------

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        """Ready once the start-up load finished, until draining or shutdown begins, and
        while the queue gate (``readiness_max_queue_depth``), if any, is open."""
        gate = self.queue_gate
        return self._started and not self._stopping and (gate is None or gate.open())

    def drain(self) -> None:
        """Report not ready from now on, while still serving (SIGTERM, before shutdown)."""
        self._stopping = True

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "inferd", "version": __version__, "extensions": EXTENSIONS}

    def model_ready(self, name: str, version: str | None) -> bool:
        """Raises ModelNotFound for an unknown model or version."""
        if version is None:
            return any(v.state is VersionState.READY for v in self.manager.versions(name))
        return self.manager.find(name, version).state is VersionState.READY

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        """V2 model metadata, plus inferd's state, device and memory of the version."""
        chosen = self.manager.get(name, version)
        if chosen.signature is None:
            raise ModelNotReady(name, version, chosen.state)
        pre = chosen.preprocessor  # with declared preprocessing, callers send raw columns
        inputs = chosen.signature.inputs if pre is None else pre.input_specs
        return {
            "name": name,
            "versions": [
                v.label for v in self.manager.versions(name) if v.state is VersionState.READY
            ],
            "platform": chosen.config.platform,
            "inputs": [s.to_dict() for s in inputs],
            "outputs": [s.to_dict() for s in chosen.signature.outputs],
            "parameters": {
                "version": chosen.label,
                "state": chosen.state.value,
                "device": chosen.device,
                "memory_bytes": chosen.memory_bytes,
                "max_batch_size": chosen.config.max_batch_size,
                "queue_depth": chosen.batcher.queued if chosen.batcher is not None else 0,
                "instances": chosen.batcher.instances if chosen.batcher is not None else 0,
                "instances_changed": chosen.instances_changed,
            },
        }

    def model_config(self, name: str, version: str | None) -> dict[str, Any]:
        """The model's configuration in Triton's ``model_config`` JSON shape."""
        chosen = self.manager.get(name, version)
        cfg = chosen.config
        signature = chosen.signature
        if signature is None:
            raise ModelNotReady(name, version, chosen.state)
        platform, backend = _TRITON_PLATFORM.get(cfg.platform, (cfg.platform, cfg.platform))
        # Triton leaves the batch dimension out of dims when max_batch_size > 0. A model whose
        # only dimension is the batch is shown unbatched, so dims are never empty.
        batched = cfg.batching_enabled and all(len(s.shape) > 1 for s in signature.inputs)

        def tensors(specs: tuple[Any, ...]) -> list[dict[str, Any]]:
            return [
                {
                    "name": s.name,
                    "data_type": f"TYPE_{'STRING' if s.datatype == 'BYTES' else s.datatype}",
                    "dims": list(s.shape[1:] if batched else s.shape),
                }
                for s in specs
            ]

        policy = chosen.batcher.policy if chosen.batcher is not None else None
        config: dict[str, Any] = {
            "name": name,
            "platform": platform,
            "backend": backend,
            "version_policy": {"latest": {"num_versions": cfg.version_policy.latest or 1}},
            "max_batch_size": cfg.max_batch_size if batched else 0,
            "input": tensors(signature.inputs),
            "output": tensors(signature.outputs),
            "instance_group": [
                {
                    "name": f"{name}_0",
                    "kind": "KIND_GPU" if chosen.device.startswith("cuda") else "KIND_CPU",
                    "count": chosen.batcher.instances if chosen.batcher else cfg.instances.min,
                }
            ],
        }
        if batched and policy is not None:
            config["dynamic_batching"] = {
                "preferred_batch_size": list(policy.preferred_batch_sizes),
                "max_queue_delay_microseconds": int(policy.max_queue_delay_s * 1e6),
            }
        return config

    def statistics(self, name: str | None, version: str | None) -> dict[str, Any]:
        """Triton's statistics extension for one model, one version, or everything."""
        if name is None:
            chosen = [v for n in self.manager.names() for v in self.manager.versions(n)]
        elif version is None:
            chosen = self.manager.versions(name)
        else:
            chosen = [self.manager.find(name, version)]
        return {"model_stats": [v.stats.to_triton(v.name, v.label) for v in chosen]}

    # -- inference ---------------------------------------------------------------------------

    @property
    def routing_headers(self) -> frozenset[str]:
        """Header / gRPC metadata keys running experiments read their unit id from."""
        return self.traffic.header_keys

    async def infer(
        self, request: InferenceRequest, protocol: str, headers: Mapping[str, str] | None = None
    ) -> InferenceResponse:
        """Validate, batch and run one request.

        Args:
            request: the decoded request.
            protocol: the label metrics use (http, grpc, predict).
            headers: the values of :attr:`routing_headers` the request carried, if any.

        Raises:
            InferdError: a subclass for each way a request can fail.
        """
        start = time.perf_counter()
        # The traffic policy's call site: with no experiment or rollout running anywhere, one
        # dict test; on another model, one lookup (TrafficPolicy.route, without its call).
        live = self.traffic.live
        arm = live.get(request.model_name) if live else None
        route = None
        if arm is not None and request.model_version is None:  # a named version: not routed
            route = arm.route(request, headers)
        wanted = request.model_version if route is None else route.version
        try:
            version = await self._resolve(request.model_name, wanted)
        except InferdError as err:
            self.record_rejected(request.model_name, protocol, err.http_status)
            if route is not None and self._started:  # "still starting" is no variant's fault
                self._routed_failure(route, request, err, start)
            raise
        self.metrics.request_started(version.name, version.label)
        try:
            resilience = self.resilience  # per model.yaml: cache, breaker, fallback chain
            if resilience is None:
                response = await self._run(version, request, start)
            else:
                response = await resilience.run(version, request, start, self._run, self._resolve)
        except InferdError as err:
            elapsed = time.perf_counter() - start
            self.metrics.observe_request(
                version.name, version.label, protocol, err.http_status, elapsed
            )
            version.stats.record_request(False, elapsed, 0.0, 0.0)
            if route is not None:
                self._routed_failure(route, request, err, start)
            raise
        finally:  # answered, failed or cancelled
            self.metrics.request_ended(version.name, version.label)
        info = response.batch
        self.metrics.observe_request(
            version.name, version.label, protocol, 200, response.latency_ms / 1000.0,
            info.wait_time_ms / 1000.0,
        )  # fmt: skip
        version.stats.record_request(
            True, response.latency_ms / 1000.0, info.wait_time_ms / 1000.0, info.compute_ms / 1000.0
        )
        if route is not None:
            self.traffic.answered(route, request, response)
        drift = self.drift  # the sampling decision: a dict lookup and a random() when watched
        if drift is not None and drift.rates and drift.wants(version.name):
            drift.take(version.name, version.label, request.inputs, response.outputs)
        shadow = self.traffic.shadow
        if shadow.targets:  # with no shadow configured, one dict test; the answer is made
            shadow.offer(request, response)
        if self.prediction_log is not None:  # off by default; on: a random() and an append
            self.prediction_log.offer(version.config, request, response)
        return response

    def _routed_failure(
        self, route: Route, request: InferenceRequest, err: InferdError, start: float
    ) -> None:
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        self.traffic.record(route, request, err.http_status, elapsed_ms)

    async def _resolve(self, name: str, version: str | None) -> ModelVersion:
        try:
            return self.manager.get(name, version)
        except ModelNotFound:
            if not self._started:
                raise ModelNotReady(name, version, "LOADING: server starting") from None
            if self.control is None:
                raise
        # Registered but not loaded here (evicted, or never needed): load it now.
        return await self.control.load_on_demand(name, version)

    async def _run(
        self, version: ModelVersion, request: InferenceRequest, start: float
    ) -> InferenceResponse:
        if version.signature is None or version.batcher is None:
            raise ModelNotReady(version.name, version.label, version.state)
        inputs = model_inputs(request, version.signature, version.preprocessor)
        timeout_s = None if request.timeout_ms is None else request.timeout_ms / 1000.0
        admission = self.admission  # overload control: one attribute test when off
        if admission is not None and admission.enabled(version):
            submit = partial(version.batcher.submit, inputs, priority=request.priority,
                             timeout_s=timeout_s)  # fmt: skip
            outputs, info = await admission.admit(version, request, start, submit)
        else:
            outputs, info = await version.batcher.submit(
                inputs, priority=request.priority, timeout_s=timeout_s
            )
        if request.outputs is not None:
            outputs = {name: outputs[name] for name in request.outputs}
        return InferenceResponse(
            model_name=version.name,
            model_version=version.label,
            outputs=outputs,
            id=request.id,
            batch=info,
            latency_ms=(time.perf_counter() - start) * 1000.0,
        )

    async def _run_shadow(
        self, requests: list[InferenceRequest], version: str
    ) -> list[dict[str, Any] | Exception]:
        """Run shadow copies of one model on ``version`` (loaded on demand) at background
        priority: packed into batch-sized requests first (:mod:`inferd.batching.pack`), so
        sparse copies cost the batcher one entry per batch, not one each. Returns each copy's
        outputs or error, in order; they count in no request metric or statistic."""
        chosen = await self._resolve(requests[0].model_name, version)
        if chosen.signature is None or chosen.batcher is None:
            raise ModelNotReady(chosen.name, chosen.label, chosen.state)
        results: list[Any] = [None] * len(requests)  # every entry is set below
        inputs: list[dict[str, Any] | None] = []
        for index, request in enumerate(requests):
            try:
                inputs.append(model_inputs(request, chosen.signature, chosen.preprocessor))
            except Exception as err:  # this copy's inputs do not fit the shadow version
                inputs.append(None)
                results[index] = err
        policy = chosen.batcher.policy
        packs = pack(inputs, policy.max_batch_size if policy.batching else 1)
        if len(packs) == 1:
            await self._run_shadow_pack(chosen, packs[0], results)
        else:
            await asyncio.gather(*(self._run_shadow_pack(chosen, p, results) for p in packs))
        for index, request in enumerate(requests):
            outputs = results[index]
            if request.outputs is not None and isinstance(outputs, dict):
                results[index] = {name: outputs[name] for name in request.outputs}
        return results

    async def _run_shadow_pack(
        self, chosen: ModelVersion, shadow_pack: Pack, results: list[Any]
    ) -> None:
        count = len(shadow_pack.members)
        answers: list[Any]
        try:
            outputs = await self._submit_shadow(chosen, shadow_pack.inputs())
        except InferenceFailed as err:
            if count == 1:
                answers = [err]
            else:  # as the batcher does: one bad copy fails only itself
                answers = [await self._shadow_alone(chosen, part) for part in shadow_pack.parts]
        except Exception as err:  # queue full, shed, draining: the same for every member
            answers = [err] * count
        else:
            try:
                answers = list(shadow_pack.unpack(outputs))
            except ValueError as err:  # an output without a row per input row
                answers = [InferenceFailed(chosen.name, chosen.label, str(err))] * count
        for index, answer in zip(shadow_pack.members, answers, strict=True):
            results[index] = answer

    async def _shadow_alone(self, chosen: ModelVersion, inputs: dict[str, Any]) -> Any:
        try:
            return await self._submit_shadow(chosen, inputs)
        except Exception as err:
            return err

    async def _submit_shadow(self, chosen: ModelVersion, inputs: dict[str, Any]) -> Any:
        assert chosen.batcher is not None  # checked by _run_shadow
        submit = partial(chosen.batcher.submit, inputs, background=True)
        admission = self.admission  # under overload control, shed first and never waiting
        if admission is not None and admission.enabled(chosen):
            outputs, _ = await admission.shadow(chosen, submit)
        else:
            outputs, _ = await submit()
        return outputs

    def record_rejected(self, model: str, protocol: str, code: int) -> None:
        """Count a request refused before it reached a model version (bad body, 404...)."""
        self.metrics.observe_request(model or "", "", protocol, code, 0.0)

    # -- repository extension ----------------------------------------------------------------

    def repository_index(self) -> list[dict[str, str]]:
        """Every registered model and every version this process holds, with its state."""
        if self.control is not None:
            return self.control.repository_index()
        return [
            {"name": v.name, "version": v.label, "state": v.state.value}
            for name in self.manager.names()
            for v in self.manager.versions(name)
        ]

    async def load_model(self, name: str) -> None:
        """(Re)load a model: re-import its folder, retry failed versions, reconcile."""
        if self.control is None:
            raise ModelNotFound(name, known=self.manager.names())
        await self.control.load_model(name)

    async def unload_model(self, name: str) -> None:
        """Drain and unload every version of a model; it stays unloaded until loaded."""
        if self.control is None:
            await self.manager.unload(name)
            return
        await self.control.unload_model(name)
