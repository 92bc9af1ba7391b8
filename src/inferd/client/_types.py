"""What the SDK returns and raises, and its retry policy."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Status codes worth retrying: the server is overloaded, draining or still loading (503), or
# a gateway in front (HAProxy, nginx, an ingress) lost the replica before it answered (502).
RETRYABLE_HTTP = frozenset({502, 503})
RETRYABLE_GRPC = frozenset({"UNAVAILABLE"})


@dataclass(slots=True)
class InferResult:
    """The answer to one inference request.

    Attributes:
        model_name: the model that answered.
        model_version: the version that answered.
        outputs: output name -> numpy array (BYTES outputs are object arrays of ``bytes``).
        id: the request id echoed back, if one was sent.
        parameters: response parameters, if any.
    """

    model_name: str
    model_version: str
    outputs: dict[str, np.ndarray]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        """The output called ``name``."""
        return self.outputs[name]


class ClientError(Exception):
    """The server refused a call, or could not be reached.

    Attributes:
        message: the server's error message (``{"error": ...}`` / gRPC details).
        status: the HTTP status (gRPC codes are mapped to their HTTP equivalent), or None
            when no answer came.
        code: the gRPC status code name (``NOT_FOUND``...), HTTP statuses mapped likewise.
        retry_after_s: the server's Retry-After, if it sent one.
    """

    def __init__(
        self, message: str, *, status: int | None, code: str, retry_after_s: float | None = None
    ) -> None:
        super().__init__(f"[{code}] {message}")
        self.message = message
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        """True for overload and unavailability, which a later attempt may not meet."""
        return self.status in RETRYABLE_HTTP or self.code in RETRYABLE_GRPC


_HTTP_TO_GRPC = {
    400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 405: "UNIMPLEMENTED", 409: "ALREADY_EXISTS",
    413: "RESOURCE_EXHAUSTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}  # fmt: skip
_GRPC_TO_HTTP = {
    "INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "UNIMPLEMENTED": 501, "ALREADY_EXISTS": 409,
    "FAILED_PRECONDITION": 400, "RESOURCE_EXHAUSTED": 429, "INTERNAL": 500, "UNKNOWN": 500,
    "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504, "CANCELLED": 499,
}  # fmt: skip


def http_error(status: int, message: str, retry_after: str | None) -> ClientError:
    """A ClientError for an HTTP error answer."""
    code = _HTTP_TO_GRPC.get(status, "UNKNOWN")
    return ClientError(message, status=status, code=code, retry_after_s=_seconds(retry_after))


def grpc_error(code: str, message: str, retry_after: str | None) -> ClientError:
    """A ClientError for a gRPC status."""
    status = _GRPC_TO_HTTP.get(code, 500)
    return ClientError(message, status=status, code=code, retry_after_s=_seconds(retry_after))


def _seconds(value: str | None) -> float | None:
    try:
        return None if value is None else max(float(value), 0.0)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Retry:
    """Retries with exponential backoff for calls refused as unavailable (502 from a gateway,
    503, UNAVAILABLE, no answer at all).

    Args:
        attempts: calls in all, the first included (1 disables retries).
        backoff_s: the wait before the second attempt; it doubles for each next one.
        max_backoff_s: the longest wait, also the cap on a server's Retry-After.
        jitter: the fraction of each wait drawn at random, so clients don't retry in step.
    """

    attempts: int = 3
    backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"Retry.attempts: expected >= 1, got {self.attempts}")
        if self.backoff_s < 0 or self.max_backoff_s < 0 or not 0 <= self.jitter <= 1:
            raise ValueError(
                "Retry: expected backoff_s >= 0, max_backoff_s >= 0 and jitter in [0, 1], got "
                f"{self.backoff_s}, {self.max_backoff_s}, {self.jitter}"
            )

    def delay(self, attempt: int, error: ClientError) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        wait = self.backoff_s * 2 ** (attempt - 1)
        if error.retry_after_s is not None:
            wait = max(wait, error.retry_after_s)
        wait = min(wait, self.max_backoff_s)
        return float(wait * (1 - self.jitter * random.random()))
