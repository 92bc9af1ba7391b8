"""The HTTP transport: a plain ASGI app over the data plane.

No web framework: routing is a split of the path, and each endpoint is a few lines that
decode, call the data plane and encode. This keeps the per-request cost close to a bare ASGI
app (see docs/performance.md for the measurements behind the choice).

Bodies of LARGE_BODY_BYTES or more are decoded in a worker thread, after a pre-scan that
checks every input's declared shape against the server's limits and the model's signature,
and counts its data, before any data is parsed (docs/security.md, "Request bodies").

Past 500 lines because the router is one flat dispatch over every HTTP route family (V2,
``/predict``, explain, generate, ``/v1``, health, metrics, ``/ui``): the route families' own
logic lives in their modules, and what stays here is the shared decode/answer path that
each route's per-request cost depends on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import orjson

from inferd.api._generation import error_body as generation_error_body
from inferd.api.auth import http_token
from inferd.api.management import ManagementRoutes
from inferd.api.openai import GenerativeRoutes
from inferd.api.openai import owns as generative_path
from inferd.api.ui import is_ui_path, ui_response
from inferd.errors import InferdError, InvalidInput, PayloadTooLarge, require_method
from inferd.explain.reference import wants_explanation
from inferd.explain.service import Explanations
from inferd.monitoring.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from inferd.monitoring.tracing import RequestTrace, Tracing, annotate_current
from inferd.protocol._prescan import PRESCAN_BYTES
from inferd.protocol.predict import CountCheck, decode_predict_request, encode_predict_response
from inferd.protocol.v2 import (
    DeclaredCheck,
    decode_infer_request,
    encode_error,
    encode_infer_response,
)
from inferd.resilience.precomputed import ENTITY_HEADER as _ENTITY_HEADER
from inferd.resilience.precomputed import ENTITY_PARAMETER
from inferd.security.guard import Guard
from inferd.security.limits import RequestLimits
from inferd.security.policy import classify_http
from inferd.serving.dataplane import DataPlane
from inferd.serving.management import ManagementPlane
from inferd.serving.validation import check_declared
from inferd.types import InferenceRequest, InferenceResponse, Signature

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Result = tuple[int, bytes, list[tuple[bytes, bytes]]]

JSON = b"application/json"
# From this size on a body is pre-scanned and decoded off the event loop; below it, decoding
# costs microseconds and a thread hop would cost more.
LARGE_BODY_BYTES = PRESCAN_BYTES
# /v1 bodies are parsed whole on the event loop; none needs more than a few KiB.
MANAGEMENT_BODY_BYTES = 1 << 20
_NO_HEADERS: list[tuple[bytes, bytes]] = []


class _Disconnected(Exception):
    """The client went away before sending its whole body."""


class _ManagementBodyTooLarge(InferdError):
    """A ``/v1`` body past MANAGEMENT_BODY_BYTES."""

    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"

    def __init__(self, size: int) -> None:
        super().__init__(
            f"request body: expected at most {MANAGEMENT_BODY_BYTES} bytes for /v1 (management "
            f"requests are small JSON documents), got {size}"
        )


def _json(status: int, payload: Any) -> Result:
    return status, orjson.dumps(payload), _NO_HEADERS


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


ENTITY_HEADER = _ENTITY_HEADER.encode()


_HEADER_LENGTH = b"inference-header-content-length"


def _infer_headers(scope: Scope) -> tuple[bytes | None, bytes | None]:
    """The binary extension's header length and ``inferd-entity-id``, in one pass over the
    headers (the entity header costs V2 requests no scan of their own)."""
    length = entity = None
    for key, value in scope["headers"]:
        if key == _HEADER_LENGTH:
            length = value
        elif key == ENTITY_HEADER:  # ASGI header names are lower case
            entity = value
    return length, entity


def _entity_header(request: InferenceRequest, value: bytes | None) -> None:
    """The ``inferd-entity-id`` header as the request's ``entity_id`` parameter (a parameter
    in the body wins)."""
    if value is not None and ENTITY_PARAMETER not in request.parameters:
        request.parameters[ENTITY_PARAMETER] = value.decode("latin-1")


class HttpApp:
    """ASGI application serving V2 REST, ``/predict`` and ``/metrics``.

    Args:
        dataplane: the shared data plane.
        management: the management plane behind ``/v1``; None leaves ``/v1`` out.
        max_body_bytes: larger request bodies are refused with 413.
        on_startup: awaited on ASGI lifespan startup.
        on_shutdown: awaited on ASGI lifespan shutdown (after in-flight requests finished).
        guard: API key checks and rate limits (inferd.api.auth); None with auth off.
        limits: size limits on decoded inference requests; None for none.
        tracing: spans (and log ids) for inference requests; None or inactive for none.
    """

    def __init__(
        self,
        dataplane: DataPlane,
        management: ManagementPlane | None = None,
        *,
        max_body_bytes: int = 64 * 1024 * 1024,
        on_startup: Callable[[], Awaitable[None]] | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        guard: Guard | None = None,
        limits: RequestLimits | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.dataplane = dataplane
        # Tested once per request: None unless tracing or JSON logs are on.
        self._tracing = tracing if tracing is not None and tracing.active else None
        self.guard = guard
        self.limits = limits
        self.management = ManagementRoutes(management) if management is not None else None
        self.max_body_bytes = max_body_bytes
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown
        self._openapi: bytes | None = None  # built on first GET /openapi.json
        # /openai/v1/... and V2 generate: they stream, so they answer through send themselves.
        self.generative: GenerativeRoutes | None = None
        self.explanations = Explanations()  # /explain and explain: true

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            kind = message["type"]
            hook = self._on_startup if kind == "lifespan.startup" else self._on_shutdown
            try:
                if hook is not None:
                    await hook()
            except Exception as err:
                logger.exception("lifespan %s failed", kind)
                await send({"type": f"{kind}.failed", "message": str(err)})
                return
            await send({"type": f"{kind}.complete"})
            if kind == "lifespan.shutdown":
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._tracing is not None and _inference_path(scope["path"]):
            with self._trace(scope) as trace:
                await self._answer(scope, receive, send, trace)
            return
        await self._answer(scope, receive, send, None)

    def _trace(self, scope: Scope) -> RequestTrace:
        assert self._tracing is not None  # only called with tracing on
        path = scope["path"]
        if path.startswith("/v2/"):
            versioned = "/versions/" in path
            route = (
                "/v2/models/{model}/versions/{version}/infer"
                if versioned
                else "/v2/models/{model}/infer"
            )
        else:
            route = "/predict"
        method = scope["method"]
        parent, state, request_id = _trace_headers(scope)
        trace = self._tracing.request(f"{method} {route}", parent, state, request_id)
        if trace.sampled:  # unsampled requests skip building attributes
            trace.set_attributes({"http.request.method": method, "http.route": route,
                                  "url.path": path})  # fmt: skip
        return trace

    def _trace_headers(
        self, trace: RequestTrace, status: int, out: list[tuple[bytes, bytes]]
    ) -> None:
        """x-trace-id with tracing on; x-request-id with JSON logs (the id their lines carry)."""
        assert self._tracing is not None  # a trace exists only with tracing or JSON logs on
        trace.http_status(status)
        if self._tracing.log_ids:
            out.append((b"x-request-id", trace.request_id.encode("latin-1", "replace")))
        if self._tracing.tracer is not None:
            out.append((b"x-trace-id", trace.trace_id.encode()))

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, trace: RequestTrace | None
    ) -> None:
        caller = None
        try:
            if self.guard is not None:  # auth on: 401/403/429 before routing or reading
                caller = self._admit(scope)
            if self.generative is not None and generative_path(scope["path"]):
                body = await self._body(scope, receive)
                await self.generative.serve(scope, body, receive, send)
                return
            status, body, headers = await self._route(scope, receive)
        except _Disconnected:
            return
        except InferdError as err:
            status, body = err.http_status, generation_error_body(scope["path"], err)
            headers = [(k.encode(), v.encode()) for k, v in err.headers().items()]
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("unexpected error on %s %s", scope["method"], scope["path"])
            status, body, headers = 500, encode_error("internal server error"), _NO_HEADERS
        finally:
            if caller is not None and self.guard is not None:
                self.guard.release(caller)
        out = [] if any(k == b"content-type" for k, _ in headers) else [(b"content-type", JSON)]
        out.extend(headers)
        out.append((b"content-length", str(len(body)).encode()))
        if trace is not None:
            self._trace_headers(trace, status, out)
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

    def _admit(self, scope: Scope) -> Any:
        assert self.guard is not None  # only called with a guard
        group, model = classify_http(scope["path"])
        client = scope.get("client")
        host = client[0] if client else None
        caller = self.guard.admit(http_token(scope["headers"]), group, model, host)
        scope["inferd.caller"] = caller
        return caller

    async def _route(self, scope: Scope, receive: Receive) -> Result:
        parts = scope["path"].strip("/").split("/")
        method = scope["method"]
        head = parts[0]
        if head == "v2":
            return await self._v2(method, parts[1:], scope, receive)
        if head == "predict" and len(parts) == 1:
            require_method(method, "POST")
            return await self._predict(scope, receive)
        if head == "v1" and self.management is not None:
            raw_query = scope.get("query_string", b"").decode("latin-1")
            # Blank values are kept: "?stage=" is a wrong stage (400), not no filter.
            query = dict(parse_qsl(raw_query, keep_blank_values=True))
            actor = (_header(scope, b"x-inferd-actor") or b"anonymous").decode("latin-1")
            caller = scope.get("inferd.caller")
            if caller is not None:  # auth on: the key, not a header, says who acts
                actor = f"{actor} (key {caller.id})"
            body = await self._body(scope, receive)
            if len(body) > MANAGEMENT_BODY_BYTES:  # parsed whole, on the loop: keep it small
                raise _ManagementBodyTooLarge(len(body))
            status, payload = await self.management.handle(
                method, parts[1:], query, body, actor, caller
            )
            return _json(status, payload)
        if head == "openapi.json" and len(parts) == 1:
            require_method(method, "GET")
            if self._openapi is None:
                from inferd.api.openapi import openapi_document

                # Generating it walks every pydantic model (tens of ms): not on the loop.
                document = await asyncio.to_thread(openapi_document)
                self._openapi = orjson.dumps(document)
            return 200, self._openapi, _NO_HEADERS
        if head == "metrics" and len(parts) == 1:
            require_method(method, "GET")
            content_type = METRICS_CONTENT_TYPE.encode()
            # With several workers rendering reads every worker's value files: not on the loop.
            body = await asyncio.to_thread(self.dataplane.metrics.render)
            return 200, body, [(b"content-type", content_type)]
        if head == "ui" and is_ui_path(parts):  # the status page's static files
            return ui_response(method, parts)
        return _not_found(scope["path"])

    async def _v2(self, method: str, parts: list[str], scope: Scope, receive: Receive) -> Result:
        dp = self.dataplane
        n = len(parts)
        if n == 0 or parts == [""]:
            require_method(method, "GET")
            return _json(200, dp.server_metadata())
        if parts[0] == "health" and n == 2 and parts[1] in ("live", "ready"):
            require_method(method, "GET")
            ok = dp.live() if parts[1] == "live" else dp.ready()
            return _json(200 if ok else 503, {parts[1]: ok})
        if parts[0] == "models" and n >= 2:
            return await self._model(method, parts[1:], scope, receive)
        if parts[0] == "repository" and n >= 2:
            return await self._repository(method, parts[1:])
        return _not_found("/v2/" + "/".join(parts))

    async def _model(self, method: str, parts: list[str], scope: Scope, receive: Receive) -> Result:
        dp = self.dataplane
        name = parts[0]
        if name == "stats" and len(parts) == 1:
            require_method(method, "GET")
            return _json(200, dp.statistics(None, None))
        version: str | None = None
        rest = parts[1:]
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        action = rest[0] if rest else ""
        if len(rest) > 1:
            return _not_found("/v2/models/" + "/".join(parts))
        if action in ("infer", "explain"):
            require_method(method, "POST")
            return await self._infer(name, version, scope, receive, action == "explain")
        require_method(method, "GET")
        if action == "":
            return _json(200, dp.model_metadata(name, version))
        if action == "ready":
            ready = dp.model_ready(name, version)
            return _json(200 if ready else 503, {"name": name, "ready": ready})
        if action == "config":
            return _json(200, dp.model_config(name, version))
        if action == "stats":
            return _json(200, dp.statistics(name, version))
        return _not_found("/v2/models/" + "/".join(parts))

    async def _infer(
        self, name: str, version: str | None, scope: Scope, receive: Receive, explain: bool = False
    ) -> Result:
        try:
            body = await self._body(scope, receive)
            header, entity = _infer_headers(scope)
            header_length = _int_header(header) if header is not None else None
            if len(body) < LARGE_BODY_BYTES:
                request, fmt = decode_infer_request(body, header_length, name, version)
            else:
                check = self._declared_check(name, version)
                request, fmt = await asyncio.to_thread(
                    decode_infer_request, body, header_length, name, version, check
                )
            if self.limits is not None:
                self.limits.check(request)
            explain = explain or wants_explanation(request.parameters)
        except InferdError as err:
            self.dataplane.record_rejected(name, "http", err.http_status)
            raise
        if self._tracing is not None:
            annotate_current(request.id, request.model_name, request.model_version)
        if explain:  # attributions instead of outputs (inferd.explain, docs/explanations.md)
            explained = await self.explanations.answer(self.dataplane, request)
            payload, extra = encode_infer_response(explained, fmt)
            return (
                200,
                payload,
                [(k.encode(), v.encode()) for k, v in extra.items()]
                + [(b"x-model-version", explained.model_version.encode())],
            )
        _entity_header(request, entity)  # precomputed tables (inferd.resilience.precomputed)
        keys = self.dataplane.routing_headers  # empty unless an experiment routes by header
        found = _routing_headers(scope, keys) if keys else None
        response = await self.dataplane.infer(request, "http", found)
        payload, extra = encode_infer_response(response, fmt)
        headers = [(k.encode(), v.encode()) for k, v in extra.items()]
        headers.append((b"x-model-version", response.model_version.encode()))
        _routing_answer_headers(response, headers)
        return 200, payload, headers

    async def _predict(self, scope: Scope, receive: Receive) -> Result:
        try:
            body = await self._body(scope, receive)
            if len(body) < LARGE_BODY_BYTES:
                request = decode_predict_request(body)
            else:
                count: CountCheck | None = None
                if (limits := self.limits) is not None:
                    count = lambda name, n: limits.check_declared(name, None, n)  # noqa: E731
                request = await asyncio.to_thread(decode_predict_request, body, count)
            if self.limits is not None:
                self.limits.check(request)
            caller = scope.get("inferd.caller")
            if caller is not None and self.guard is not None:  # the model is in the body
                self.guard.check_model(caller, request.model_name)
        except InferdError as err:
            self.dataplane.record_rejected("", "predict", err.http_status)
            raise
        if self._tracing is not None:
            annotate_current(request.id, request.model_name, request.model_version)
        _entity_header(request, _header(scope, ENTITY_HEADER))
        keys = self.dataplane.routing_headers
        found = _routing_headers(scope, keys) if keys else None
        response = await self.dataplane.infer(request, "predict", found)
        headers = [(b"x-model-version", response.model_version.encode())]
        _routing_answer_headers(response, headers)
        return 200, encode_predict_response(response), headers

    def _declared_check(self, name: str, version: str | None) -> DeclaredCheck:
        """What a large body's inputs are checked against before their data is parsed."""
        limits = self.limits
        signature = self._signature(name, version)

        def check(
            input_name: str, datatype: str | None, shape: Sequence[int] | None, elements: int
        ) -> None:
            if limits is not None:
                limits.check_declared(input_name, shape, elements)
            if signature is not None:
                check_declared(signature, input_name, datatype, shape)

        return check

    def _signature(self, name: str, version: str | None) -> Signature | None:
        """The signature a request will be validated against, when it is known now: not when
        an experiment may route an unversioned request to another version, nor when the
        model is not loaded (the data plane then loads it and validates)."""
        if version is None and self.dataplane.traffic.live:
            return None
        try:
            chosen = self.dataplane.manager.get(name, version)
        except InferdError:
            return None
        # Declared preprocessing takes raw columns of any number type: checked when applied.
        return chosen.signature if chosen.preprocessor is None else None

    async def _repository(self, method: str, parts: list[str]) -> Result:
        require_method(method, "POST")
        dp = self.dataplane
        if parts == ["index"]:
            return _json(200, dp.repository_index())
        if len(parts) == 3 and parts[0] == "models" and parts[2] in ("load", "unload"):
            if parts[2] == "load":
                await dp.load_model(parts[1])
            else:
                await dp.unload_model(parts[1])
            return 200, b"{}", _NO_HEADERS
        return _not_found("/v2/repository/" + "/".join(parts))

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and _int_header(declared) > limit:
            raise PayloadTooLarge(_int_header(declared), limit)
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise PayloadTooLarge(len(body), limit)
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(size, limit)
            chunks.append(chunk)
        if size >= LARGE_BODY_BYTES:  # a join this large releases the GIL: not on the loop
            return await asyncio.to_thread(b"".join, chunks)
        return b"".join(chunks)


def _not_found(path: str) -> Result:
    return 404, encode_error(f"path '{path}' not found; see the endpoint list in the README"), []


def _inference_path(path: str) -> bool:
    return path == "/predict" or (path.startswith("/v2/models/") and path.endswith("/infer"))


def _trace_headers(scope: Scope) -> tuple[str | None, str | None, str | None]:
    """The request's ``traceparent``, ``tracestate`` and ``x-request-id``."""
    found: dict[bytes, str] = {}
    for key, value in scope["headers"]:
        if key in (b"traceparent", b"tracestate", b"x-request-id"):
            found[key] = value.decode("latin-1")
    return found.get(b"traceparent"), found.get(b"tracestate"), found.get(b"x-request-id")


def _routing_headers(scope: Scope, keys: frozenset[str]) -> dict[str, str]:
    """The request's values of the headers running experiments route by."""
    return {
        name: value.decode("latin-1")
        for key, value in scope["headers"]
        if (name := key.decode("latin-1")) in keys
    }


def _routing_answer_headers(
    response: InferenceResponse, headers: list[tuple[bytes, bytes]]
) -> None:
    """Add the headers that say how the answer was made: where the resilience layer served it
    from (cache, coalesced or fallback), and the experiment variant or rollout arm."""
    if response.parameters:
        served = response.parameters.get("served_from")
        if served is not None:
            headers.append((b"inferd-served-from", str(served).encode()))
    headers.extend(response.headers)  # encoded once per arm (inferd.traffic.route)


def _int_header(value: bytes) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise InvalidInput("header", "a non-negative integer", repr(value.decode("latin-1")))
    return number
