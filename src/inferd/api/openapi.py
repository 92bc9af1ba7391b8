"""The OpenAPI 3.0 document of inferd's HTTP API, served at ``GET /openapi.json``.

It describes the Open Inference Protocol (KServe V2) REST endpoints, ``/predict``,
``/metrics`` and the ``/v1`` management API (models, versions, audit, jobs, keys), with the
request bodies each accepts. Clients can be generated from it, and the test suite fuzzes the
server from it with schemathesis (``tests/security/test_fuzz_openapi.py``): every operation,
valid and invalid bodies, no 5xx.

Every error answer, whatever the status, is ``{"error": "<what field, what was expected,
what came>"}``; the document says so once, as each operation's ``default`` response.
"""

from __future__ import annotations

from typing import Any

from inferd import __version__
from inferd.jobs.spec import JobSpec

Schema = dict[str, Any]

DATATYPES = [
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
STAGES = ["registered", "staging", "production", "archived"]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _op(
    summary: str,
    tag: str,
    ok: Schema | None = None,
    *,
    status: str = "200",
    body: Schema | None = None,
    body_required: bool = True,
    params: list[Schema] | None = None,
    content: Schema | None = None,
) -> Schema:
    """One operation: its success answer, the shared error answer, parameters and body."""
    responses: Schema = {
        status: {"description": "success", "content": content or _json(ok or {"type": "object"})},
        "default": {"description": "an error, with the reason", "content": _json(_ref("Error"))},
    }
    op: Schema = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": body}
    return op


def _path(name: str, description: str, example: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1},
        "example": example,
    }


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


MODEL = _path("model_name", "registered model name", "linear")
VERSION = _path("model_version", "version number", "1")
VERSION_NUMBER = {**VERSION, "schema": {"type": "integer", "minimum": 1}, "example": 1}
JOB = _path("job_id", "job id", "0123456789ab")
KEY = _path("key_id", "the public id of an API key (8 hex digits)", "1a2b3c4d")
HEADER_LENGTH = {
    "name": "Inference-Header-Content-Length",
    "in": "header",
    "required": False,
    "description": "binary tensor extension: length of the JSON header before the raw tensors",
    "schema": {"type": "integer", "minimum": 0},
}


def _schemas() -> dict[str, Schema]:
    parameters: Schema = {"type": "object", "additionalProperties": True}
    strings: Schema = {"type": "array", "items": {"type": "string"}}
    tensor_meta: Schema = {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string", "enum": DATATYPES},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}},
        },
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "RequestInput": {
            "type": "object",
            "required": ["name", "shape", "datatype"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                "datatype": {"type": "string", "enum": DATATYPES},
                "parameters": parameters,
                "data": {"description": "row-major values, flat or nested", "type": "array"},
            },
        },
        "RequestOutput": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "parameters": parameters},
        },
        "InferenceRequest": {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "parameters": parameters,
                "inputs": {"type": "array", "minItems": 1, "items": _ref("RequestInput")},
                "outputs": {"type": "array", "items": _ref("RequestOutput")},
            },
        },
        "InferenceResponse": {
            "type": "object",
            "required": ["model_name", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "parameters": parameters,
                "outputs": {"type": "array", "items": {"type": "object"}},
            },
        },
        "ServerMetadata": {
            "type": "object",
            "required": ["name", "version", "extensions"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "extensions": {"type": "array", "items": {"type": "string"}},
            },
        },
        "ModelMetadata": {
            "type": "object",
            "required": ["name", "platform", "inputs", "outputs"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": tensor_meta},
                "outputs": {"type": "array", "items": tensor_meta},
            },
        },
        "PredictRequest": {
            "type": "object",
            "required": ["model_name", "input_data"],
            "properties": {
                "model_name": {"type": "string", "minLength": 1},
                "model_version": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
                "input_data": {
                    "type": "object",
                    "description": "input name -> values (numbers, booleans or strings)",
                    "additionalProperties": True,
                },
                "user_id": {"type": "string"},
                "request_id": {"type": "string"},
                "parameters": parameters,
            },
        },
        "RegisterVersion": {
            "type": "object",
            "required": ["artifact_uri"],
            "properties": {
                "artifact_uri": {"type": "string", "minLength": 1},
                "version": {"type": "integer", "minimum": 1},
                "metadata": {"type": "object"},
                "stage": {"type": "string", "enum": STAGES},
                "config": {"type": "object", "description": "model.yaml as JSON"},
            },
        },
        "ModelChanges": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "description": {"type": "string"},
                "tags": strings,
                "gates": {**strings, "description": "rules like 'accuracy >= 0.85'"},
                "config": {"type": "object", "description": "model.yaml as JSON"},
            },
        },
        "VersionChanges": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
                "tags": strings,
                "description": {"type": "string"},
                "training": {"type": "object"},
                "signature": {"type": "object", "nullable": True},
                "pinned": {"type": "boolean"},
            },
        },
        "JobSpec": _job_schema(),
        "NewKey": {
            "type": "object",
            "required": ["role"],
            "properties": {
                "role": {"type": "string", "enum": ["predict", "operator", "admin"]},
                "models": {
                    "oneOf": [strings, {"type": "string", "description": "comma-separated"}],
                    "nullable": True,
                    "description": "the models the key may use; null: every model",
                },
                "name": {"type": "string", "maxLength": 200, "nullable": True},
            },
        },
    }


def _job_schema() -> Schema:
    """The job body from the pydantic model itself, so the two cannot drift apart."""
    schema = JobSpec.model_json_schema(ref_template="#/components/schemas/JobSpec/$defs/{model}")
    schema.pop("$defs", None)  # JobSpec has none today; keep the document self-contained
    converted: Schema = _openapi30(schema)
    return converted


def _openapi30(schema: Any) -> Any:
    """JSON Schema -> OpenAPI 3.0: ``anyOf [X, null]`` becomes ``X`` with ``nullable``."""
    if isinstance(schema, list):
        return [_openapi30(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _openapi30(v) for k, v in schema.items()}
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        out.pop("anyOf")
        if len(rest) == 1:
            out.update(rest[0])
        else:
            out["anyOf"] = rest
        out["nullable"] = True
    return out


def _paths() -> dict[str, Schema]:
    infer_body = {
        "application/json": {"schema": _ref("InferenceRequest")},
        "application/octet-stream": {
            "schema": {"type": "string", "format": "binary"},
            "description": "binary tensor extension: JSON header, then raw tensor bytes",
        },
    }
    metadata = _op("model metadata", "v2", _ref("ModelMetadata"))
    ready = _op("whether the model can answer (503 when not)", "v2")
    config = _op("model configuration (Triton's model config as JSON)", "v2")
    stats = _op("inference statistics of the model", "v2")
    infer = _op(
        "run inference", "v2", _ref("InferenceResponse"), body=infer_body, params=[HEADER_LENGTH]
    )
    version_path = "/v2/models/{model_name}/versions/{model_version}"
    metrics = {"text/plain": {"schema": {"type": "string"}}}
    array = {"type": "array", "items": {"type": "object"}}
    stage_body = _json(
        {
            "type": "object",
            "required": ["stage"],
            "properties": {"stage": {"type": "string", "enum": STAGES}},
        }
    )
    # fmt: off
    paths: dict[str, Schema] = {
        "/v2/health/live": {"get": _op("the server process is up", "v2")},
        "/v2/health/ready": {"get": _op("the server can answer inference (503 when not)", "v2")},
        "/v2": {"get": _op("server metadata", "v2", _ref("ServerMetadata"))},
        "/v2/models/stats": {"get": _op("statistics of every model", "v2")},
        "/v2/models/{model_name}": {"parameters": [MODEL], "get": metadata},
        "/v2/models/{model_name}/ready": {"parameters": [MODEL], "get": ready},
        "/v2/models/{model_name}/config": {"parameters": [MODEL], "get": config},
        "/v2/models/{model_name}/stats": {"parameters": [MODEL], "get": stats},
        "/v2/models/{model_name}/infer": {"parameters": [MODEL], "post": infer},
        version_path: {"parameters": [MODEL, VERSION], "get": metadata},
        f"{version_path}/ready": {"parameters": [MODEL, VERSION], "get": ready},
        f"{version_path}/config": {"parameters": [MODEL, VERSION], "get": config},
        f"{version_path}/stats": {"parameters": [MODEL, VERSION], "get": stats},
        f"{version_path}/infer": {"parameters": [MODEL, VERSION], "post": infer},
        "/v2/repository/index": {
            "post": _op("models and their state here", "repository", array)
        },
        "/v2/repository/models/{model_name}/load": {
            "parameters": [MODEL],
            "post": _op("load (or reload) a model", "repository"),
        },
        "/v2/repository/models/{model_name}/unload": {
            "parameters": [MODEL],
            "post": _op("unload every version here", "repository"),
        },
        "/predict": {
            "post": _op("simple JSON inference", "predict", body=_json(_ref("PredictRequest")))
        },
        "/metrics": {"get": _op("Prometheus metrics", "metrics", content=metrics)},
        "/openapi.json": {"get": _op("this document", "v1")},
        "/v1/models": {
            "get": _op(
                "registered models",
                "v1",
                array,
                params=[
                    _query("tag", {"type": "string"}, "key=value"),
                    _query(
                        "stage", {"type": "string", "enum": STAGES}, "models with a version here"
                    ),
                    _query("q", {"type": "string"}, "substring of the name or description"),
                ],
            )
        },
        "/v1/models/{model_name}": {
            "parameters": [MODEL],
            "get": _op("a model, its versions and their state here", "v1"),
            "patch": _op(
                "change description, tags, gates or config", "v1", body=_json(_ref("ModelChanges"))
            ),
            "delete": _op("delete the model and its versions", "v1"),
        },
        "/v1/models/{model_name}/versions": {
            "parameters": [MODEL],
            "get": _op(
                "versions of the model",
                "v1",
                array,
                params=[
                    _query("stage", {"type": "string", "enum": STAGES}, "only this stage"),
                    _query("metric", {"type": "string"}, "order by this metadata metric"),
                ],
            ),
            "post": _op(
                "register a version", "v1", status="201", body=_json(_ref("RegisterVersion"))
            ),
        },
        "/v1/models/{model_name}/versions/{model_version}": {
            "parameters": [MODEL, VERSION_NUMBER],
            "get": _op("one version", "v1"),
            "patch": _op("change the version's metadata", "v1",
                         body=_json(_ref("VersionChanges"))),
            "delete": _op("delete the version", "v1"),
        },
        "/v1/models/{model_name}/versions/{model_version}/promote": {
            "parameters": [MODEL, VERSION_NUMBER],
            "post": _op("make the version production (hot swap, gates checked)", "v1"),
        },
        "/v1/models/{model_name}/versions/{model_version}/stage": {
            "parameters": [MODEL, VERSION_NUMBER],
            "post": _op("move the version to a stage", "v1", body=stage_body),
        },
        "/v1/models/{model_name}/versions/{model_version}/archive": {
            "parameters": [MODEL, VERSION_NUMBER],
            "post": _op("archive the version", "v1"),
        },
        "/v1/models/{model_name}/default": {
            "parameters": [MODEL],
            "post": _op(
                "route the model's default traffic to a version (a promotion)",
                "v1",
                body=_json(
                    {
                        "type": "object",
                        "required": ["version"],
                        "properties": {"version": {"type": "integer", "minimum": 1}},
                    }
                ),
            ),
        },
        "/v1/models/{model_name}/rollback": {
            "parameters": [MODEL],
            "post": _op("return production to the previous production version", "v1"),
        },
        "/v1/models/{model_name}/audit": {
            "parameters": [MODEL],
            "get": _op("the model's audit log, newest first", "v1", array, params=[_limit()]),
        },
        "/v1/audit": {"get": _op("the audit log, newest first", "v1", array, params=[_limit()])},
        "/v1/jobs": {
            "get": _op(
                "batch jobs, newest first",
                "jobs",
                array,
                params=[
                    _query("state", {"type": "string"}, "only jobs in this state"),
                    _limit(),
                ],
            ),
            "post": _op(
                "submit a batch inference job", "jobs", status="201", body=_json(_ref("JobSpec"))
            ),
        },
        "/v1/jobs/{job_id}": {"parameters": [JOB], "get": _op("a job and its progress", "jobs")},
        "/v1/jobs/{job_id}/cancel": {"parameters": [JOB], "post": _op("cancel a job", "jobs")},
        "/v1/jobs/{job_id}/resume": {
            "parameters": [JOB],
            "post": _op("resume a failed or cancelled job", "jobs"),
        },
        "/v1/keys": {
            "get": _op(
                "API keys (never their secrets)",
                "keys",
                array,
                params=[
                    _query("revoked", {"type": "boolean"}, "include revoked keys"),
                ],
            ),
            "post": _op(
                "create a key; the answer holds it, once",
                "keys",
                status="201",
                body=_json(_ref("NewKey")),
            ),
        },
        "/v1/keys/{key_id}": {"parameters": [KEY], "delete": _op("revoke a key", "keys")},
        "/v1/keys/{key_id}/revoke": {"parameters": [KEY], "post": _op("revoke a key", "keys")},
    }
    # fmt: on
    return paths


def _limit() -> Schema:
    return _query("limit", {"type": "integer", "minimum": 1, "maximum": 10_000}, "at most")


def openapi_document() -> Schema:
    """The whole document (a fresh dict on each call)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "inferd",
            "version": __version__,
            "description": "Open Inference Protocol (KServe V2) REST, /predict, and the /v1 "
            'management API. Errors are {"error": "..."} with the status that fits.',
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an inferd API key or a JWT",
                },
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{}, {"bearer": []}, {"apiKey": []}],
    }
