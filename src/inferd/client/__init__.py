"""The Python SDK: :class:`Client` and :class:`AsyncClient` over HTTP or gRPC.

    >>> from inferd.client import Client
    >>> with Client("http://localhost:8000") as client:        # or "grpc://localhost:8001"
    ...     y = client.infer("linear", {"x": np.array([1, 2, 3], dtype=np.float32)})["y"]

Numpy arrays in and out; HTTP sends binary tensors by default; calls refused as unavailable
(503 / UNAVAILABLE, a gateway's 502) are retried with backoff (:class:`Retry`); every other
refusal raises :class:`ClientError` with the server's message. Over ``http(s)://`` the clients also
manage the registry (``list_models``, ``register_version``, ``promote``, ``rollback``,
``audit``), batch jobs (``submit_job``, ``wait_for_job``), API keys (``create_key``) and
A/B experiments (``create_experiment``, ``experiment_action``, ``post_outcomes``,
``experiment_results``), canary rollouts (``create_rollout``, ``rollout_action``,
``rollout_status``) and shadow traffic (``set_shadow``, ``shadow_results``).
"""

from inferd.client._async import AsyncClient
from inferd.client._client import Client
from inferd.client._manage import (
    AuditInfo,
    ExperimentInfo,
    JobInfo,
    KeyInfo,
    ModelInfo,
    RolloutInfo,
    ShadowInfo,
    TableInfo,
    VersionInfo,
)
from inferd.client._transport import Tls
from inferd.client._types import ClientError, InferResult, Retry

__all__ = [
    "AsyncClient", "AuditInfo", "Client", "ClientError", "ExperimentInfo", "InferResult",
    "JobInfo", "KeyInfo",
    "ModelInfo", "Retry", "RolloutInfo", "ShadowInfo", "TableInfo", "Tls", "VersionInfo",
]  # fmt: skip
