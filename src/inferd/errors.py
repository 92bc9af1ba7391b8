"""One error hierarchy for the whole server.

Every error knows its HTTP status and its gRPC status code *name* (a string, so this module
never imports grpc). Transports map errors in exactly one place each.

    InferdError
    ├── ConfigError            invalid settings or model.yaml (start-up)
    ├── ModelNotFound          404 / NOT_FOUND
    ├── ModelNotReady          503 / UNAVAILABLE
    ├── ModelLoadError         500 / INTERNAL (a load or warm-up failed)
    ├── InvalidInput           400 / INVALID_ARGUMENT
    ├── PayloadTooLarge        413 / RESOURCE_EXHAUSTED
    ├── QueueFull              503 / UNAVAILABLE, with Retry-After
    ├── RequestTimeout         504 / DEADLINE_EXCEEDED
    ├── ServerShuttingDown     503 / UNAVAILABLE
    ├── FrameworkMissing       500 / FAILED_PRECONDITION
    ├── InferenceFailed        500 / INTERNAL
    ├── Conflict               409 / ALREADY_EXISTS
    ├── PromotionRefused       409 / FAILED_PRECONDITION
    ├── ArtifactError          400 / FAILED_PRECONDITION
    ├── RegistryUnavailable    503 / UNAVAILABLE, with Retry-After
    ├── InsufficientMemory     503 / RESOURCE_EXHAUSTED
    ├── Unauthenticated        401 / UNAUTHENTICATED (missing, unknown or revoked API key)
    ├── PermissionDenied       403 / PERMISSION_DENIED (role or model scope)
    ├── KeyNotFound            404 / NOT_FOUND (an API key id)
    ├── RateLimited            429 / RESOURCE_EXHAUSTED, with Retry-After
    └── RequestTooLarge        413 / RESOURCE_EXHAUSTED (tensor, row or string limits)
"""

from __future__ import annotations


class InferdError(Exception):
    """Root of every error inferd raises on purpose.

    Attributes:
        http_status: the HTTP status a transport answers with.
        grpc_code: the name of the gRPC status code (``grpc.StatusCode[name]``).
    """

    http_status: int = 500
    grpc_code: str = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        """Extra response headers that belong to this error (e.g. Retry-After)."""
        return {}


class ConfigError(InferdError):
    """A settings value or a model.yaml field is invalid.

    Args:
        source: the file (or "settings"/"environment") that holds the bad value.
        field: the dotted field name.
        problem: what is wrong and how to fix it.
    """

    http_status = 400
    grpc_code = "INVALID_ARGUMENT"

    def __init__(self, source: str, field: str, problem: str) -> None:
        super().__init__(f"{source}: field '{field}': {problem}")
        self.source = source
        self.field = field


class ModelNotFound(InferdError):
    """The named model, or the named version of it, does not exist."""

    http_status = 404
    grpc_code = "NOT_FOUND"

    def __init__(self, model: str, version: str | None = None, known: list[str] | None = None):
        what = f"model '{model}'" if version is None else f"version '{version}' of model '{model}'"
        hint = ""
        if known is not None:
            hint = f"; known: {', '.join(known) if known else 'none'}"
        super().__init__(f"{what} not found{hint}")
        self.model = model
        self.version = version


class ModelNotReady(InferdError):
    """The model exists but no version of it can take requests right now."""

    http_status = 503
    grpc_code = "UNAVAILABLE"

    def __init__(self, model: str, version: str | None, state: str) -> None:
        what = f"model '{model}'" if version is None else f"model '{model}' version '{version}'"
        super().__init__(f"{what} is not ready (state: {state}); retry once it is ready")


class ModelLoadError(InferdError):
    """Loading or warming a model version failed; other models keep serving."""

    http_status = 500
    grpc_code = "INTERNAL"

    def __init__(self, model: str, version: int | str, reason: str) -> None:
        super().__init__(f"model '{model}' version {version} failed to load: {reason}")
        self.model = model
        self.version = str(version)
        self.reason = reason


class FrameworkMissing(InferdError):
    """The runtime for a platform needs an optional extra that is not installed."""

    http_status = 500
    grpc_code = "FAILED_PRECONDITION"

    def __init__(self, platform: str, extra: str, err: Exception) -> None:
        super().__init__(
            f"platform '{platform}' needs an optional dependency that is not installed ({err}); "
            f"install it with: pip install 'inferd[{extra}]'"
        )


class InvalidInput(InferdError):
    """A request is malformed or does not match the model's signature.

    Args:
        field: where the problem is, e.g. ``inputs[0].shape`` or ``input 'x'``.
        expected: what the server expected there.
        got: what the request carried.
    """

    http_status = 400
    grpc_code = "INVALID_ARGUMENT"

    def __init__(self, field: str, expected: str, got: str) -> None:
        super().__init__(f"{field}: expected {expected}, got {got}")
        self.field = field


class PreprocessingError(InferdError):
    """A request's raw features fail a model's declared preprocessing (``model.yaml``).

    Args:
        where: the feature or column at fault, e.g. ``feature 'country'``.
        rule: the rule that refused it (``one_hot``, ``scale``...), or None.
        problem: what was expected and what came.
    """

    http_status = 400
    grpc_code = "INVALID_ARGUMENT"

    def __init__(self, where: str, rule: str | None, problem: str) -> None:
        rule_part = f"{rule}: " if rule else ""
        super().__init__(f"preprocessing: {where}: {rule_part}{problem}")


class PayloadTooLarge(InferdError):
    """The request body is larger than the configured limit."""

    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"request body: expected at most {limit} bytes, got {size}; "
            "send a smaller batch or raise INFERD_MAX_BODY_BYTES"
        )


class QueueFull(InferdError):
    """The batcher queue of a model version is full; the client should back off."""

    http_status = 503
    grpc_code = "UNAVAILABLE"

    def __init__(self, model: str, version: str, limit: int, retry_after_s: int = 1) -> None:
        super().__init__(
            f"model '{model}' version {version}: queue is full ({limit} requests waiting); "
            f"retry after {retry_after_s} s or raise batching.max_queue_size"
        )
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"retry-after": str(self.retry_after_s)}


class RequestTimeout(InferdError):
    """A request waited longer than its timeout or the model's queue timeout."""

    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"

    def __init__(self, model: str, version: str, waited_ms: float, limit_ms: float, where: str):
        super().__init__(
            f"model '{model}' version {version}: request timed out {where} after "
            f"{waited_ms:.1f} ms (limit {limit_ms:g} ms)"
        )


class ServerShuttingDown(InferdError):
    """The server (or this model version) is draining and takes no new requests."""

    http_status = 503
    grpc_code = "UNAVAILABLE"

    def __init__(self, what: str = "server") -> None:
        super().__init__(f"{what} is shutting down and accepts no new requests; retry elsewhere")

    def headers(self) -> dict[str, str]:
        return {"retry-after": "1", "connection": "close"}


class InferenceFailed(InferdError):
    """The runtime raised on a request (run alone after its batch raised): only it fails."""

    http_status = 500
    grpc_code = "INTERNAL"

    def __init__(self, model: str, version: str, reason: str) -> None:
        super().__init__(f"model '{model}' version {version}: inference failed: {reason}")


class Conflict(InferdError):
    """The change contradicts the registry's state (exists already, serves traffic...)."""

    http_status = 409
    grpc_code = "ALREADY_EXISTS"


class PromotionRefused(InferdError):
    """A promotion gate or the version's status refuses a stage change."""

    http_status = 409
    grpc_code = "FAILED_PRECONDITION"

    def __init__(self, model: str, version: int, reason: str) -> None:
        super().__init__(f"model '{model}' version {version}: promotion refused: {reason}")


class ArtifactError(InferdError):
    """An artifact is missing, unreadable, or does not match its recorded digest."""

    http_status = 400
    grpc_code = "FAILED_PRECONDITION"


class RegistryUnavailable(InferdError):
    """The registry database cannot be reached; serving goes on with what is loaded."""

    http_status = 503
    grpc_code = "UNAVAILABLE"

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"registry database unavailable ({reason}); serving continues with the loaded "
            "models, retry the management call shortly"
        )

    def headers(self) -> dict[str, str]:
        return {"retry-after": "2"}


class InsufficientMemory(InferdError):
    """A version does not fit in the memory budget (or device) even after eviction."""

    http_status = 503
    grpc_code = "RESOURCE_EXHAUSTED"

    def __init__(self, model: str, version: int | str, device: str, needed: int, free: int):
        super().__init__(
            f"model '{model}' version {version} does not fit on {device}: needs {needed} bytes, "
            f"{free} free after evicting every unpinned version; raise the memory budget, "
            "unpin versions or place the model elsewhere"
        )

    def headers(self) -> dict[str, str]:
        return {"retry-after": "5"}


class Unauthenticated(InferdError):
    """The request carries no API key, or one the server does not know (or revoked)."""

    http_status = 401
    grpc_code = "UNAUTHENTICATED"

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"authentication: {reason}; send 'Authorization: Bearer <key>' or 'X-API-Key: <key>' "
            "(gRPC metadata 'authorization' or 'x-api-key')"
        )

    def headers(self) -> dict[str, str]:
        return {"www-authenticate": 'Bearer realm="inferd"'}


class PermissionDenied(InferdError):
    """The API key is valid but its role or model scope does not allow the call."""

    http_status = 403
    grpc_code = "PERMISSION_DENIED"


class RateLimited(InferdError):
    """A rate or concurrency limit refused the request; retry after ``retry_after_s``."""

    http_status = 429
    grpc_code = "RESOURCE_EXHAUSTED"

    def __init__(self, what: str, retry_after_s: int) -> None:
        super().__init__(f"{what}; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"retry-after": str(self.retry_after_s)}


class RequestTooLarge(InferdError):
    """A request exceeds a tensor, row or string limit of the server."""

    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"

    def __init__(self, field: str, limit: int, got: int, setting: str) -> None:
        super().__init__(
            f"{field}: expected at most {limit}, got {got}; send less per request or raise "
            f"{setting}"
        )


class KeyNotFound(InferdError):
    """No API key has this id."""

    http_status = 404
    grpc_code = "NOT_FOUND"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key '{key_id}' not found; list keys with `inferd keys list`")


class ExperimentNotFound(InferdError):
    """No experiment has this id."""

    http_status = 404
    grpc_code = "NOT_FOUND"

    def __init__(self, exp_id: str) -> None:
        super().__init__(
            f"experiment '{exp_id}' not found; list experiments with `inferd experiments list`"
        )


class MethodNotAllowed(InferdError):
    """The path exists but not for this HTTP method (405, with the allowed ones)."""

    http_status = 405
    grpc_code = "UNIMPLEMENTED"

    def __init__(self, method: str, allowed: str) -> None:
        super().__init__(f"method: expected {allowed}, got {method}")
        self.allowed = allowed

    def headers(self) -> dict[str, str]:
        return {"allow": self.allowed}


def require_method(method: str, expected: str, listed: str | None = None) -> None:
    """Raise MethodNotAllowed unless ``method`` is ``expected``.

    ``listed`` is what the ``Allow`` header names when the path takes several methods.
    """
    if method != expected:
        raise MethodNotAllowed(method, listed or expected)
