"""Wiring: settings -> registry, metrics, model manager, model control -> planes -> ASGI app.

``create_app`` is the factory uvicorn calls in every worker process; it reads its settings
from the environment, which the CLI filled in before starting the workers.
"""

from __future__ import annotations

import asyncio
import logging
import os
from functools import partial
from pathlib import Path

from inferd.api.alerts import AlertRoutes
from inferd.api.auth import Security
from inferd.api.drift import DriftRoutes
from inferd.api.experiments import ExperimentRoutes
from inferd.api.grpc import inference_server
from inferd.api.http import HttpApp
from inferd.api.jobs import JobRoutes
from inferd.api.keys import KeyRoutes
from inferd.api.metrics import MetricRoutes
from inferd.api.openai import GenerativeRoutes
from inferd.api.rollouts import RolloutRoutes
from inferd.api.shadow import ShadowRoutes
from inferd.errors import InferdError, RegistryUnavailable
from inferd.jobs import JobService
from inferd.monitoring.alerts import alert_evaluator
from inferd.monitoring.alerts_store import AlertStore
from inferd.monitoring.drift import DriftMonitor
from inferd.monitoring.drift_store import DriftStore
from inferd.monitoring.generate_metrics import GenerateMetrics
from inferd.monitoring.logs import configure_logging
from inferd.monitoring.metrics import Metrics, mark_worker_dead
from inferd.monitoring.prediction_log import prediction_log_from_settings
from inferd.monitoring.rollout_metrics import RolloutMetrics
from inferd.monitoring.sampler import Sampler
from inferd.monitoring.shadow_metrics import ShadowMetrics
from inferd.monitoring.tracing import tracing_from_settings
from inferd.registry import FsspecArtifactStore, Registry
from inferd.registry.artifacts import local_path
from inferd.resilience.admission import Admission
from inferd.resilience.layer import Resilience
from inferd.resilience.tables import TableStore
from inferd.runtimes.trust import parse_roots
from inferd.security.tokens import TokenLimits
from inferd.serving.collector import Collector
from inferd.serving.control import ModelControl
from inferd.serving.dataplane import DataPlane
from inferd.serving.importer import RepositoryImporter
from inferd.serving.instances import InstanceScaler
from inferd.serving.load import QueueGate, capacity_metrics
from inferd.serving.management import ManagementPlane
from inferd.serving.manager import ModelManager
from inferd.settings import Settings, load_settings
from inferd.traffic.experiments import ExperimentService
from inferd.traffic.policy import TrafficPolicy
from inferd.traffic.rollout_controller import RolloutController
from inferd.traffic.rollout_store import RolloutStore
from inferd.traffic.rollouts import RolloutService
from inferd.traffic.shadow import ShadowMirror
from inferd.traffic.shadow_store import ShadowStore
from inferd.traffic.store import ExperimentStore
from inferd.transport.grpc.tls import server_tls
from inferd.transport.http.drain import DrainOnTerm

logger = logging.getLogger(__name__)


def repository_root(settings: Settings) -> Path | None:
    """The model repository to import: the configured one, the built-in examples when
    neither a repository nor a registry is configured, else none."""
    if settings.model_repository is not None:
        return settings.model_repository.expanduser()
    if settings.registry_url is not None:
        return None
    from inferd.serving.examples import ensure_examples  # needs onnx: import only when used

    return ensure_examples(settings.home / "examples")


def code_roots(settings: Settings, repository: Path | None) -> list[Path]:
    """Where artifacts that run code may load from: ``INFERD_CODE_ROOTS``, else the served
    repository and the (local) artifact root, the folders an admin controls."""
    if settings.code_roots is not None:
        return parse_roots(settings.code_roots)
    roots = [repository.expanduser().resolve()] if repository is not None else []
    artifact_root = local_path(settings.resolved_artifact_root)
    if artifact_root is not None:
        roots.append(artifact_root.expanduser().resolve())
    return roots


def answered_requests(manager: ModelManager) -> int:
    """Requests this process has answered; batch jobs slow down while it grows."""
    try:
        return sum(v.stats.success.count + v.stats.fail.count
                   for name in manager.names() for v in manager.versions(name))  # fmt: skip
    except (RuntimeError, InferdError):  # a version came or went meanwhile: call it activity
        return -1


def build_app(
    settings: Settings, metrics: Metrics | None = None, collector: Collector | None = None
) -> HttpApp:
    """Build the HTTP app for one process; models load in the background after start-up.

    Args:
        settings: the server settings.
        metrics: a metrics object to use (tests pass their own); a new one by default.
        collector: the process's garbage-collector tuning (``create_app`` passes the
            settings'); None leaves the collector alone, as tests that build apps in their
            own process want.
    """
    metrics = metrics or Metrics()
    registry = Registry(settings.resolved_registry_url, migrate_schema=False)
    artifacts = FsspecArtifactStore(settings.resolved_artifact_root, settings.home / "cache")
    root = repository_root(settings)
    roots = code_roots(settings, root)
    manager = ModelManager(
        metrics,
        memory_budget=settings.memory_budget_bytes,
        device_budget=settings.device_memory_budget_bytes,
        code_roots=roots,
        collector=collector,
    )
    importer = RepositoryImporter(root, registry) if root is not None else None
    control = ModelControl(registry, artifacts, manager, importer, settings.poll_interval_s)
    experiments = ExperimentStore(registry)
    shadows = ShadowStore(registry)  # agreement flushed every 5 s, merged when read
    shadow = ShadowMirror(shadows, observer=ShadowMetrics(metrics.registry))
    traffic = TrafficPolicy(experiments, shadow=shadow)  # routing state in memory
    dataplane = DataPlane(manager, metrics, control, traffic)
    drift = DriftMonitor(DriftStore(registry), metrics.registry)  # samples flushed every 5 s
    dataplane.drift = drift.sampler
    prediction_log = prediction_log_from_settings(  # None unless --prediction-log-uri
        settings.prediction_log_uri,
        settings.prediction_log_rate,
        metrics.registry,
        settings.prediction_log_flush_s,
    )
    dataplane.prediction_log = prediction_log
    resilience = Resilience(  # per model.yaml; precomputed tables are read from the registry
        metrics.registry, settings.cache_redis_url, tables=TableStore(registry)
    )
    dataplane.resilience = resilience
    dataplane.admission = Admission(metrics.registry, settings.overload_control)  # per model.yaml
    management = ManagementPlane(registry, artifacts, control, code_roots=roots)
    # Every process runs the controller; only the holder of the lease in the registry acts.
    rollouts = RolloutService(RolloutStore(registry), management.promote, control.preload)
    rollout_controller = RolloutController(rollouts)
    rollout_metrics = RolloutMetrics(metrics.registry)  # canary share, changes by kind
    traffic.canary.observer = rollout_metrics.routing
    rollouts.events.subscribe(lambda e: rollout_metrics.event(e.model, e.kind))
    # Alert rules (--alerts-file): every process reports events; the lease holder evaluates.
    alert_store = AlertStore(registry)
    alerting = alert_evaluator(settings.alerts_file, alert_store, metrics.collect, registry)
    if alerting is not None:
        drift.events.subscribe(alerting.on_drift_event)
        rollouts.events.subscribe(alerting.on_traffic_event)
    # Batch jobs run in low-priority worker processes; queued and orphaned ones resume here.
    jobs = JobService(registry, settings.resolved_artifact_root, str(settings.home / "cache"),
                      poll_s=settings.poll_interval_s,
                      online_activity=partial(answered_requests, manager),
                      code_roots=roots)  # fmt: skip
    security = Security.from_settings(settings, registry)  # auth mode, keys, limits
    tracing = tracing_from_settings(settings.otlp_endpoint, settings.trace_sample_rate,
                                    log_ids=settings.log_format == "json")  # fmt: skip
    tasks: set[asyncio.Task[None]] = set()
    if settings.readiness_max_queue_depth is not None:
        dataplane.queue_gate = QueueGate(manager, settings.readiness_max_queue_depth)
    metrics.capacity = capacity_metrics(settings.capacity_rps, metrics.registry, manager)
    sampler = Sampler(metrics)
    # gRPC shares this process's data plane, so HTTP and gRPC requests can share a batch;
    # with --workers N every worker listens on the gRPC port (SO_REUSEPORT).
    grpc_server = inference_server(
        dataplane, settings.host, settings.grpc_port,
        max_message_bytes=settings.grpc_max_message_bytes, reuse_port=settings.workers > 1,
        interceptors=security.interceptors(), tls=server_tls(settings),
        limits=security.limits, max_connections=settings.max_connections,
        request_read_timeout_s=settings.request_read_timeout_s,
        max_buffered_bytes=settings.grpc_max_buffered_bytes,
        max_new_connections_per_s=settings.grpc_max_new_connections_per_s,
        transport=settings.grpc_transport, tracing=tracing,
    )  # fmt: skip

    async def load(failures: dict[str, str] | None = None) -> None:
        while failures is None:
            try:
                failures = await dataplane.start()  # loads experiments too
            except RegistryUnavailable as err:
                logger.error("%s; retrying in %.1f s", err.message, settings.poll_interval_s)
                await asyncio.sleep(settings.poll_interval_s)
        if collector is not None:
            collector.settle()  # start-up objects out of the full collections' way
        for what, reason in failures.items():
            logger.error("not serving %s: %s", what, reason)
        logger.info("serving models: %s", ", ".join(manager.names()) or "none")
        experiment_task = asyncio.create_task(traffic.run(settings.poll_interval_s))
        tasks.add(experiment_task)
        experiment_task.add_done_callback(tasks.discard)
        rollout_task = asyncio.create_task(rollout_controller.run())
        tasks.add(rollout_task)
        rollout_task.add_done_callback(tasks.discard)
        shadow_task = asyncio.create_task(shadow.run(settings.poll_interval_s))
        tasks.add(shadow_task)
        shadow_task.add_done_callback(tasks.discard)
        await asyncio.to_thread(drift.refresh)  # which models to sample, before the first tick
        drift_task = asyncio.create_task(drift.run())
        tasks.add(drift_task)
        drift_task.add_done_callback(tasks.discard)
        # instances: {min, max} models follow their load, within this worker's CPU share.
        scaler_task = asyncio.create_task(
            InstanceScaler(manager, metrics, workers=settings.workers).run()
        )
        tasks.add(scaler_task)
        scaler_task.add_done_callback(tasks.discard)
        if alerting is not None:
            alert_task = asyncio.create_task(alerting.run())
            tasks.add(alert_task)
            alert_task.add_done_callback(tasks.discard)
        await control.run()

    async def startup() -> None:
        metrics.resources.started()  # beyond --workers: workers the supervisor restarted
        # SIGTERM: not ready first, listeners closed drain_delay_s later (balancers notice).
        DrainOnTerm(settings.drain_delay_s, dataplane.drain).install()
        if security.guard is not None:
            await security.start(settings.poll_interval_s, tasks)
        loaded: dict[str, str] | None = None
        if settings.workers > 1:
            # Workers share the ports, so the kernel hands this worker connections as soon
            # as it listens, whatever the readiness probe says. A worker that replaces a dead
            # one must not take requests before its models are in, or they fail with 503
            # while its siblings could serve them: load first, listen after. During a
            # registry outage it listens at once (liveness) and loads in the background.
            try:
                loaded = await dataplane.start()
            except RegistryUnavailable as err:
                logger.error("%s; loading in the background", err.message)
        await grpc_server.start()
        # One worker loads in the background, so liveness answers at once and readiness
        # flips when done.
        task = asyncio.create_task(load(loaded))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        jobs.start()
        sampling = asyncio.create_task(sampler.run())  # CPU, memory, GPU, summary snapshots
        tasks.add(sampling)
        sampling.add_done_callback(tasks.discard)
        if prediction_log is not None:
            logging_task = asyncio.create_task(prediction_log.run())
            tasks.add(logging_task)
            logging_task.add_done_callback(tasks.discard)

    async def shutdown() -> None:
        for task in list(tasks):
            task.cancel()
        await asyncio.to_thread(jobs.stop)
        await grpc_server.stop(settings.graceful_timeout_s)
        await shadow.close()  # before the batchers drain: queued copies are dropped, counted
        await dataplane.stop()
        await drift.close()  # the last sampled rows, once no request runs
        if prediction_log is not None:
            await prediction_log.close()  # the last logged requests
        await resilience.close()  # the shared cache's writes in flight
        await traffic.close()  # the last tallies and exposures, once no request runs
        await rollout_controller.close()  # another process leads at once
        if alerting is not None:
            await alerting.close()  # the last events; another process evaluates at once
        await asyncio.to_thread(tracing.shutdown)  # export the spans still buffered
        registry.close()
        sampler.close()
        mark_worker_dead(os.getpid())

    app = HttpApp(
        dataplane,
        management,
        max_body_bytes=settings.max_body_bytes,
        on_startup=startup,
        on_shutdown=shutdown,
        guard=security.guard,
        limits=security.limits,
        tracing=tracing,
    )
    tokens = TokenLimits(settings.key_tokens_per_minute, settings.model_tokens_per_minute)
    app.generative = GenerativeRoutes(
        manager, GenerateMetrics(metrics.registry), security.guard, traffic, tokens
    )
    if app.management is not None:
        app.management.jobs = JobRoutes(jobs, settings.cache_redis_url)
        app.management.keys = KeyRoutes(security.store, security.refresh)
        service = ExperimentService(experiments, management.promote, control.preload)
        app.management.experiments = ExperimentRoutes(service, traffic)
        app.management.rollouts = RolloutRoutes(rollouts, traffic)
        app.management.shadow = ShadowRoutes(shadows, shadow, control.preload)
        app.management.drift = DriftRoutes(drift, management)
        app.management.alerts = AlertRoutes(alert_store, alerting.config if alerting else None)
        app.management.metrics = MetricRoutes(metrics.window, registry.get_model)
    return app


def create_app() -> HttpApp:
    """Uvicorn factory: settings from the ``INFERD_*`` environment."""
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    collector = Collector(settings.gc_tuning, settings.gc_young_threshold)
    collector.configure()
    return build_app(settings, collector=collector)
