"""The generated OpenAPI document against the app that serves it, in-process.

Every documented operation is served (no router 404, no 405) and answers bodies that fit its
documented schemas; every route the app serves is documented (probed with the path words the
route modules compare against); the document is valid OpenAPI 3.1.
"""

from __future__ import annotations

import ast
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, get_args

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate

import inferd.api
from inferd.api.app import build_app
from inferd.api.openapi import openapi_document
from inferd.api.schemas import OPERATIONS, Operation, v2
from inferd.settings import Settings
from inferd.types import DATATYPES

DOC = openapi_document()
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Served but not yet in the route table. Each entry names who documents it; the test below
# fails once an entry is documented, so the list only shrinks.
UNDOCUMENTED: dict[str, str] = {}
V2_BODY = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}
# Bodies that succeed against the examples, so their answers are checked too.
BODIES: dict[str, Any] = {
    "model_infer": V2_BODY,
    "model_version_infer": V2_BODY,
    "model_explain": V2_BODY,
    "model_version_explain": V2_BODY,
    "predict": {"model_name": "linear", "input_data": {"x": [1.0, 2.0]}},
    "update_model": {"description": "documented"},
    "update_version": {"description": "documented"},
    "set_stage": {"stage": "staging"},
    "set_shadow": {"version": 1, "fraction": 0.1},
    "set_default_version": {"version": 1},
    "set_drift_settings": {"sample_rate": 0.5},
    "set_reference": {"data": {"x": [1.0, 2.0, 3.0]}},
    "create_key": {"role": "predict", "name": "probe"},
    "register_version": {"artifact_uri": "/nonexistent/model.onnx"},
    "submit_job": {"model": "linear", "inputs": ["/nonexistent"], "output": "/nonexistent"},
    "create_experiment": {
        "name": "probe",
        "model": "linear",
        "variants": [
            {"name": "a", "version": 1, "weight": 0.5},
            {"name": "b", "version": 2, "weight": 0.5},
        ],
    },
}


@pytest.fixture
async def client(repo: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(Settings(home=tmp_path, model_repository=repo))
    assert await app.dataplane.start() == {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c
    await app.dataplane.stop()


def _template(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\{\w+\\}", "[^/]+", re.escape(path)) + "$")


TEMPLATES = {path: _template(path) for path in DOC["paths"]}


def _documented(path: str) -> set[str]:
    """Methods the document lists for a concrete path (empty: no template matches)."""
    return {m.upper() for p, rx in TEMPLATES.items() if rx.match(path) for m in DOC["paths"][p]}


def _url(op: Operation, key_id: str) -> str:
    values = {"model_name": "linear", "model_version": "1", "job_id": "0123456789ab",
              "experiment_id": "exp-0123456789ab", "rollout_id": "ro-0123456789ab"}  # fmt: skip
    values["key_id"] = key_id
    return op.path.format(**{name: values[name] for name in op.path_names})


def _order(op: Operation) -> tuple[int, int]:
    """Operations that take things away run last, deepest path first."""
    last = op.method == "DELETE" or op.path.endswith(("/unload", "/revoke", "/archive"))
    return (1 if last else 0, -len(op.path) if last else 0)


def _check_answer(op: Operation, response: httpx.Response) -> None:
    documented = DOC["paths"][op.path][op.method.lower()]["responses"]
    entry = documented.get(str(response.status_code), documented["default"])
    media = response.headers["content-type"].split(";")[0]
    assert media in entry["content"], (op.operation_id, media)
    if media == "application/json":
        schema = {**entry["content"][media]["schema"], "components": DOC["components"]}
        jsonschema.Draft202012Validator(schema).validate(response.json())


def _is_route_miss(path: str, response: httpx.Response) -> bool:
    """404 because nothing routes the path, as opposed to a missing model, job or key: the
    routers' 404 names the path's unmatched tail, a missing thing names only itself."""
    if response.status_code != 404:
        return False
    return "/".join(path.split("/")[-2:]) in response.json()["error"]


def test_document_is_valid_openapi_31() -> None:
    validate(DOC)
    assert DOC["openapi"].startswith("3.1.")
    ids = [op.operation_id for op in OPERATIONS]
    assert len(ids) == len(set(ids)), "operation ids must be unique"


def test_datatypes_follow_the_core() -> None:
    assert get_args(v2.Datatype) == tuple(DATATYPES)


async def test_every_documented_operation_is_served_as_documented(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/v1/keys", json={"role": "predict"})
    assert created.status_code == 201, created.text
    key_id = created.json()["id"]
    for op in sorted(OPERATIONS, key=_order):
        path = _url(op, key_id)
        body = BODIES.get(op.operation_id, {} if op.body is not None else None)
        r = await client.request(op.method, path, json=body)
        assert r.status_code != 405, (op.method, path, r.text)
        assert not _is_route_miss(path, r), (op.method, path, r.text)
        assert r.status_code < 500, (op.method, path, r.text)
        _check_answer(op, r)
        if op.operation_id in BODIES and op.operation_id not in ("register_version", "submit_job"):
            assert r.status_code < 300, (op.operation_id, r.text)


def _path_words() -> set[str]:
    """Every string the route modules could compare a path part with: whole-word constants,
    and the parts of constants that look like paths."""
    words: set[str] = set()
    for module in Path(inferd.api.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                parts = text.split("/") if "/" in text and " " not in text else [text]
                words.update(p for p in parts if re.fullmatch(r"[a-z][a-z0-9_.]*", p))
    return words


def _prefixes() -> set[str]:
    """Concrete prefixes of every documented path, the root included."""
    found = {""}
    for op in OPERATIONS:
        parts = _url(op, "1a2b3c4d").strip("/").split("/")
        found.update("/" + "/".join(parts[:n]) for n in range(1, len(parts) + 1))
    return found


async def _served(client: httpx.AsyncClient, method: str, path: str) -> bool:
    """Whether something answers ``method path``, or (405) one of the methods it allows."""
    r = await client.request(method, path)
    if r.status_code != 405:
        return not _is_route_miss(path, r)
    allowed = {m.strip() for m in r.headers.get("allow", "").split(",")} - {method, ""}
    others = allowed - _documented(path)
    answers = [await client.request(m, path) for m in others]
    return any(a.status_code != 405 and not _is_route_miss(path, a) for a in answers)


async def test_every_served_route_is_documented(client: httpx.AsyncClient) -> None:
    served: set[tuple[str, str]] = set()
    for path in DOC["paths"]:  # undocumented methods on documented paths
        concrete = _url(next(op for op in OPERATIONS if op.path == path), "1a2b3c4d")
        for method in set(METHODS) - _documented(concrete):
            r = await client.request(method, concrete)
            if r.status_code != 405 and not _is_route_miss(concrete, r):
                served.add((method, concrete))
    words = sorted(_path_words())
    for prefix in sorted(_prefixes()):  # paths one word longer than a documented one
        for path in (f"{prefix}/{word}" for word in words):
            if _documented(path) or any(path.startswith(u) for u in UNDOCUMENTED):
                continue
            if await _served(client, "GET", path):
                served.add(("GET", path))
    assert not served, f"served but not in the OpenAPI route table: {sorted(served)}"


async def test_undocumented_entries_are_served_and_still_undocumented(
    client: httpx.AsyncClient,
) -> None:
    for path, who in UNDOCUMENTED.items():
        assert not _documented(path), f"{path} is documented now: drop it from UNDOCUMENTED"
        r = await client.get(path)
        assert r.status_code not in (404, 405), f"{path} ({who}) is not served: {r.text}"
