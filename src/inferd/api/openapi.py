"""The OpenAPI 3.1 document of inferd's HTTP API, served at ``GET /openapi.json``.

Generated, not kept by hand: the operations come from the route table
(:data:`inferd.api.schemas.OPERATIONS`), and every body, answer and parameter schema from the
pydantic models there (one ``TypeAdapter.json_schemas`` pass, shared definitions under
``components/schemas``). Clients can be generated from it, and the test suite fuzzes the
server from it with schemathesis (``tests/security/test_fuzz_openapi.py``): every operation,
valid and invalid bodies, no 5xx.

Every error answer, whatever the status, is ``{"error": "<what field, what was expected,
what came>"}``; the document says so once per operation, as its ``default`` answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from inferd import __version__
from inferd.api.schemas import OPERATIONS, Media, Operation, Param
from inferd.api.schemas._operation import PATH_PARAMETERS
from inferd.api.schemas.errors import Error

Schema = dict[str, Any]
Key = tuple[str, ...]
REF = "#/components/schemas/{model}"
JSON = "application/json"


class _Generator(GenerateJsonSchema):
    """pydantic's generator, less noise: no per-field titles, and no ``"default": null``
    on a field that may be left out but is never null (``X | SkipJsonSchema[None]``)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        if (
            "default" in json_schema
            and json_schema["default"] is None
            and not _allows_null(json_schema)
        ):
            del json_schema["default"]
        return json_schema


def _allows_null(schema: Schema) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_allows_null(s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


def _content(value: Any) -> dict[str, Any]:
    """Media type -> type of a body or answer (a bare type means JSON)."""
    return value.types if isinstance(value, Media) else {JSON: value}


def _uses(operations: Iterable[Operation]) -> list[tuple[Key, JsonSchemaMode, Any]]:
    """Every type the document describes, keyed by where it is used."""
    uses: list[tuple[Key, JsonSchemaMode, Any]] = [(("error",), "serialization", Error)]
    for op in operations:
        for param in _parameters(op):
            uses.append(((op.operation_id, "param", param.name), "validation", param.type))
        if op.body is not None:
            for media, kind in _content(op.body).items():
                uses.append(((op.operation_id, "body", media), "validation", kind))
        for status, answer in op.responses.items():
            for media, kind in _content(answer).items():
                uses.append(((op.operation_id, str(status), media), "serialization", kind))
    return uses


def _parameters(op: Operation) -> list[Param]:
    """Path parameters (the operation's own, else the shared ones), then the others."""
    own = {p.name: p for p in op.params if p.where == "path"}
    path = [own.get(name) or PATH_PARAMETERS[name] for name in op.path_names]
    return path + [p for p in op.params if p.where != "path"]


def _schemas(operations: Iterable[Operation]) -> tuple[dict[Key, Schema], dict[str, Schema]]:
    """Each use's schema (mostly ``$ref``s), and the shared definitions they point to."""
    uses = _uses(operations)
    by_key, definitions = TypeAdapter.json_schemas(
        [(key, mode, TypeAdapter(kind)) for key, mode, kind in uses],
        ref_template=REF,
        schema_generator=_Generator,
    )
    return {key: schema for (key, _mode), schema in by_key.items()}, definitions.get("$defs", {})


def _operation(op: Operation, schemas: dict[Key, Schema]) -> Schema:
    oid = op.operation_id

    def content(value: Any, where: str) -> Schema:
        return {media: {"schema": schemas[(oid, where, media)]} for media in _content(value)}

    responses: Schema = {
        str(status): {
            "description": HTTPStatus(status).phrase,
            "content": content(answer, str(status)),
        }
        for status, answer in op.responses.items()
    }
    responses["default"] = {
        "description": "an error, with the reason",
        "content": {JSON: {"schema": schemas[("error",)]}},
    }
    out: Schema = {"operationId": oid, "summary": op.summary, "tags": [op.tag]}
    parameters = [_parameter(p, schemas[(oid, "param", p.name)]) for p in _parameters(op)]
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required, "content": content(op.body, "body")}
    out["responses"] = responses
    return out


def _parameter(param: Param, schema: Schema) -> Schema:
    out: Schema = {
        "name": param.name,
        "in": param.where,
        "required": param.required or param.where == "path",
        "description": param.description,
        "schema": schema,
    }
    if param.example is not None:
        out["example"] = param.example
    return out


def openapi_document(operations: Iterable[Operation] = OPERATIONS) -> Schema:
    """The whole document (a fresh dict on each call).

    Args:
        operations: the route table; the server's own by default.
    """
    operations = list(operations)
    schemas, definitions = _schemas(operations)
    paths: dict[str, Schema] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "inferd",
            "version": __version__,
            "description": "Open Inference Protocol (KServe V2) REST, /predict, and the /v1 "
            'management API. Errors are {"error": "..."} with the status that fits.',
        },
        "paths": paths,
        "components": {
            "schemas": definitions,
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
