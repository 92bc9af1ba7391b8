"""What the rendered manifests mean, overlay by overlay: probes on the endpoints that say
what they check, a grace period past the drain, settings inferd accepts, the security
context the images allow, and what each overlay promises (docs/deploy.md)."""

from __future__ import annotations

from typing import Any

import pytest
from fixtures.k8s import OVERLAYS, environment, find, kinds, render, server_container

from inferd.settings import Settings

SERVING = tuple(f"overlays/{name}" for name in OVERLAYS)


def _settings(target: str) -> Settings:
    """The settings a server of ``target`` starts with (values from Secrets left out)."""
    env = environment(render(target))
    # extra="forbid": a misspelt INFERD_* name or a bad value fails here.
    return Settings(**{k.removeprefix("INFERD_").lower(): v for k, v in env.items()
                       if isinstance(v, str)})  # fmt: skip


def _pod_spec(target: str) -> dict[str, Any]:
    spec: dict[str, Any] = find(render(target), "Deployment")["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("target", SERVING)
def test_probes_check_what_they_say(target: str) -> None:
    container = server_container(render(target))
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/v2/health/live"
    # A slow load (minutes) must not be killed by liveness before the port opens.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


@pytest.mark.parametrize("target", SERVING)
def test_grace_period_outlasts_the_pause_and_the_drain(target: str) -> None:
    pause = server_container(render(target))["lifecycle"]["preStop"]["sleep"]["seconds"]
    settings = _settings(target)
    # A drain delay (not ready, still serving) comes before the drain where the server has one.
    drain = getattr(settings, "drain_delay_s", 0.0) + settings.graceful_timeout_s
    assert _pod_spec(target)["terminationGracePeriodSeconds"] > pause + drain


@pytest.mark.parametrize("target", SERVING)
def test_ports_agree_with_the_settings_and_the_service(target: str) -> None:
    objects = render(target)
    settings = _settings(target)
    ports = {p["name"]: p["containerPort"] for p in server_container(objects)["ports"]}
    assert ports == {"http": settings.http_port, "grpc": settings.grpc_port}
    service = {p["name"]: p["port"] for p in find(objects, "Service")["spec"]["ports"]}
    assert service == {"http": 8000, "grpc": 8001}
    assert settings.host == "0.0.0.0"


@pytest.mark.parametrize("target", SERVING)
def test_runs_as_non_root_on_a_read_only_root(target: str) -> None:
    pod = _pod_spec(target)
    container = server_container(render(target))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # Everything inferd writes lands on a volume: INFERD_HOME and /tmp.
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {str(_settings(target).home), "/tmp"} <= mounts


def test_dev_is_one_replica_on_sqlite() -> None:
    objects = render("overlays/dev")
    assert find(objects, "Deployment")["spec"]["replicas"] == 1
    assert "INFERD_REGISTRY_URL" not in environment(objects)
    assert "HorizontalPodAutoscaler" not in kinds(objects)


@pytest.mark.parametrize("target", ["overlays/prod", "overlays/gpu"])
def test_prod_is_replicated_on_postgres_and_s3(target: str) -> None:
    objects = render(target)
    env = environment(objects)
    assert env["INFERD_REGISTRY_URL"] == {"secretKeyRef": {"name": "inferd-registry", "key": "url"}}
    assert _settings(target).artifact_root.startswith("s3://")
    assert find(objects, "Deployment")["spec"]["replicas"] >= 3
    assert find(objects, "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 3
    anti = _pod_spec(target)["affinity"]["podAntiAffinity"]
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"]


@pytest.mark.parametrize("target", ["overlays/prod", "overlays/gpu", "overlays/keda"])
def test_prod_ships_no_placeholder_secret(target: str) -> None:
    objects = render(target)
    assert "Secret" not in kinds(objects)
    volumes = {v["name"]: v for v in _pod_spec(target)["volumes"]}
    assert volumes["auth"]["secret"]["secretName"] == "inferd-auth"
    assert _settings(target).jwt_key_file is not None


def test_gpu_requests_a_gpu_and_tolerates_gpu_nodes() -> None:
    container = server_container(render("overlays/gpu"))
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"].endswith("-cuda")
    tolerations = _pod_spec("overlays/gpu")["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations


def test_kserve_runtime_serves_v2_on_kserves_ports_from_mnt_models() -> None:
    objects = render("kserve")
    runtime = find(objects, "ClusterServingRuntime")
    (container,) = runtime["spec"]["containers"]
    args = container["args"]
    assert args[0] == "serve"
    assert {"--model-repository=/mnt/models", "--http-port=8080", "--grpc-port=9000"} <= set(args)
    assert {"v2", "grpc-v2"} <= set(runtime["spec"]["protocolVersions"])
    assert container["ports"][0]["containerPort"] == 8080
    isvc = find(objects, "InferenceService", "linear")["spec"]["predictor"]["model"]
    assert isvc["runtime"] == runtime["metadata"]["name"]
    formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert isvc["modelFormat"]["name"] in formats


@pytest.mark.parametrize("target", ["overlays/prod", "overlays/gpu"])
def test_prod_readiness_has_a_high_queue_condition(target: str) -> None:
    # High above the HPA's per-pod queue target: a pod leaves the endpoints only when far
    # behind, never as the normal answer to load (docs/deploy.md, probes).
    threshold = _settings(target).readiness_max_queue_depth
    metrics = find(render(target), "HorizontalPodAutoscaler")["spec"]["metrics"]
    (queue,) = [m for m in metrics if m["pods"]["metric"]["name"] == "inferd_queue_depth"]
    assert threshold is not None
    assert threshold >= 4 * int(queue["pods"]["target"]["averageValue"])
    assert _settings("overlays/dev").readiness_max_queue_depth is None  # off by default
