"""Which role each endpoint group needs, and which group (and model) a request belongs to.

=========== ================================================== ==============
group       endpoints                                          least role
=========== ================================================== ==============
open        /v2/health/*, gRPC ServerLive/ServerReady, health  none
            /ui... (the status page's static files)
read        /v2, model metadata, ready, config, stats,         predict
            /v1/models/{m}/shadow... (changes need operator),
            GET /v1/models/{m}/drift,
            GET /v1/models/{m}/metrics
infer       .../infer, .../explain, /predict, gRPC ModelInfer[Stream], predict
            /v1/experiments/{id}/outcomes, .../generate[_stream],
            /openai/v1/completions, /openai/v1/chat/completions
            (GET /openai/v1/models: read)
metrics     /metrics (open when metrics_auth is off)           operator
repository  /v2/repository/*, gRPC Repository*                 operator
manage      /v1/models..., /v1/jobs..., /v1/audit,             operator
            /v1/experiments...
admin       /v1/keys...                                        admin
=========== ================================================== ==============

A request's model is the model its path (or message) names, ``*`` for endpoints that span
every model (refused to keys scoped to some models), or None for endpoints about no model or
whose model the route checks itself (``/predict``'s body, an experiment's outcomes).
"""

from __future__ import annotations

from enum import Enum
from functools import lru_cache

from inferd.security.keys import Role


class Group(Enum):
    """Endpoint groups; :data:`REQUIRED_ROLE` says who may call each."""

    OPEN = "open"
    READ = "read"
    INFER = "infer"
    METRICS = "metrics"
    REPOSITORY = "repository"
    MANAGE = "manage"
    ADMIN = "admin"


REQUIRED_ROLE: dict[Group, Role | None] = {
    Group.OPEN: None,
    Group.READ: Role.PREDICT,
    Group.INFER: Role.PREDICT,
    Group.METRICS: Role.OPERATOR,
    Group.REPOSITORY: Role.OPERATOR,
    Group.MANAGE: Role.OPERATOR,
    Group.ADMIN: Role.ADMIN,
}
ALL_MODELS = "*"
_INFER_ACTIONS = ("infer", "explain", "generate", "generate_stream")
Target = tuple[Group, str | None]


@lru_cache(maxsize=4096)  # clients repeat few paths; a dict hit beats the split per request
def classify_http(path: str) -> Target:
    """The group and model of an HTTP path (``/predict`` names its model in the body)."""
    parts = path.strip("/").split("/")
    head, n = parts[0], len(parts)
    if head == "v2":
        if n == 3 and parts[1] == "health":
            return Group.OPEN, None
        if n >= 3 and parts[1] == "models":
            name = parts[2]
            if name == "stats" and n == 3:
                return Group.READ, ALL_MODELS
            return (Group.INFER if parts[-1] in _INFER_ACTIONS else Group.READ), name
        if n >= 2 and parts[1] == "repository":
            if n == 5 and parts[2] == "models":
                return Group.REPOSITORY, parts[3]
            return Group.REPOSITORY, ALL_MODELS
        return Group.READ, None
    if head == "predict":
        return Group.INFER, None
    if head == "openai":  # the model is in the body: the route checks the key's scope
        return (Group.READ if parts[2:3] == ["models"] else Group.INFER), None
    if head == "metrics":
        return Group.METRICS, None
    if head == "ui":
        return Group.OPEN, None  # the status page's static files; its data calls need keys
    if head == "v1":
        if n >= 2 and parts[1] == "keys":
            return Group.ADMIN, None
        if n == 2 and parts[1] == "alerts":
            return Group.READ, ALL_MODELS  # GET only; alerts span every model
        if n == 4 and parts[1] == "experiments" and parts[3] == "outcomes":
            return Group.INFER, None  # the route checks the experiment's model
        if n >= 4 and parts[1] == "models" and parts[3] == "shadow":
            return Group.READ, parts[2]  # the route refuses changes below operator
        if n == 4 and parts[1] == "models" and parts[3] == "metrics":
            return Group.READ, parts[2]  # GET only: the model's traffic summary
        if n == 4 and parts[1] == "models" and parts[3] == "drift":
            return Group.READ, parts[2]  # GET only: drift reads (settings are /drift/settings)
        if n >= 3 and parts[1] == "models":
            return Group.MANAGE, parts[2]
        return Group.MANAGE, ALL_MODELS
    return Group.READ, None


_GRPC_GROUPS: dict[str, Group] = {
    "ServerLive": Group.OPEN,
    "ServerReady": Group.OPEN,
    "ServerMetadata": Group.READ,
    "ModelReady": Group.READ,
    "ModelMetadata": Group.READ,
    "ModelConfig": Group.READ,
    "ModelStatistics": Group.READ,
    "ModelInfer": Group.INFER,
    "ModelStreamInfer": Group.INFER,
    "RepositoryIndex": Group.REPOSITORY,
    "RepositoryModelLoad": Group.REPOSITORY,
    "RepositoryModelUnload": Group.REPOSITORY,
}
INFERENCE_SERVICE = "inference.GRPCInferenceService"


def classify_grpc(method: str) -> Group:
    """The group of a gRPC method path; health checking and reflection are open."""
    service, _, name = method.lstrip("/").partition("/")
    if service != INFERENCE_SERVICE:
        return Group.OPEN
    # Methods inferd does not implement answer UNIMPLEMENTED; still only to a valid key.
    return _GRPC_GROUPS.get(name, Group.READ)


def grpc_model(group: Group, method: str, request: object) -> str | None:
    """The model a gRPC request message names (``*`` for every model)."""
    name = getattr(request, "model_name", None)
    if name is None:
        name = getattr(request, "name", None)
    if method.endswith("/ServerMetadata"):
        return None
    if name is None or name == "":
        return ALL_MODELS if group is not Group.INFER else ""
    return str(name)
