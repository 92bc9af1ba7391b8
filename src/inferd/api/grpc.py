"""The gRPC API: the RPCs of ``inference.GRPCInferenceService`` over the data plane.

The gRPC server (:mod:`inferd.transport.grpc.server`) runs on the event loop of the HTTP app
and these handlers call the very same :class:`~inferd.serving.dataplane.DataPlane`, so an
HTTP and a gRPC request for one model version can share a batch, and metrics and statistics
count both. Each RPC is a few lines: decode, call the data plane, encode. :func:`grpc_status`
maps errors to gRPC status codes, in this one place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from inferd.errors import InferdError, InvalidInput
from inferd.explain.reference import wants_explanation
from inferd.explain.service import Explanations
from inferd.monitoring.tracing import (
    REQUEST_ID_HEADER,
    TRACE_ID_HEADER,
    RequestTrace,
    Tracing,
    annotate_current,
)
from inferd.protocol import grpc_messages as messages
from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol.grpc_codec import SERVICE, decode_infer_request, encode_infer_response
from inferd.security.limits import RequestLimits
from inferd.serving.dataplane import DataPlane
from inferd.transport.grpc.context import ServicerContext
from inferd.transport.grpc.server import GrpcServer
from inferd.transport.grpc.tls import ServerTls

logger = logging.getLogger(__name__)

Context = ServicerContext  # either core's: grpc.aio's or inferd's own transport's


def grpc_status(err: InferdError) -> tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]:
    """The gRPC status, details and trailing metadata for an error (HTTP's message)."""
    trailers = tuple((k, v) for k, v in err.headers().items() if k == "retry-after")
    return grpc.StatusCode[err.grpc_code], err.message, trailers


def _unary(
    fn: Callable[[Any, Context], Awaitable[Any]], request_type: Any, response_type: Any
) -> grpc.RpcMethodHandler[Any, Any]:
    async def handler(request: Any, context: Context) -> Any:
        try:
            return await fn(request, context)
        except InferdError as err:
            code, details, trailers = grpc_status(err)
            await context.abort(code, details, trailers)
        except Exception:
            logger.exception("unexpected error in %s", fn.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal server error")

    return grpc.unary_unary_rpc_method_handler(
        handler,
        request_deserializer=request_type.FromString,
        response_serializer=response_type.SerializeToString,
    )


class InferenceService:
    """The RPCs of ``inference.GRPCInferenceService`` over one data plane.

    Args:
        dataplane: the data plane shared with the HTTP app.
        limits: size limits on decoded inference requests; None for none.
        tracing: spans (and log ids) for inference calls; None or inactive for none.
    """

    def __init__(
        self, dataplane: DataPlane, limits: RequestLimits | None = None,
        tracing: Tracing | None = None,
    ) -> None:  # fmt: skip
        self.dataplane = dataplane
        self.limits = limits
        # Tested once per call: None unless tracing or JSON logs are on.
        self._tracing = tracing if tracing is not None and tracing.active else None
        self.explanations = Explanations()  # parameters {explain: true} on ModelInfer

    def handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        """Method name -> handler; methods not listed (shared memory...) are UNIMPLEMENTED."""
        return {
            "ServerLive": _unary(self.server_live, pb.ServerLiveRequest, pb.ServerLiveResponse),
            "ServerReady": _unary(self.server_ready, pb.ServerReadyRequest, pb.ServerReadyResponse),
            "ModelReady": _unary(self.model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse),
            "ServerMetadata": _unary(
                self.server_metadata, pb.ServerMetadataRequest, pb.ServerMetadataResponse
            ),
            "ModelMetadata": _unary(
                self.model_metadata, pb.ModelMetadataRequest, pb.ModelMetadataResponse
            ),
            "ModelInfer": _unary(self.model_infer, pb.ModelInferRequest, pb.ModelInferResponse),
            "ModelStreamInfer": grpc.stream_stream_rpc_method_handler(
                self.model_stream_infer,
                request_deserializer=pb.ModelInferRequest.FromString,
                response_serializer=pb.ModelStreamInferResponse.SerializeToString,
            ),
            "ModelConfig": _unary(self.model_config, pb.ModelConfigRequest, pb.ModelConfigResponse),
            "ModelStatistics": _unary(
                self.model_statistics, pb.ModelStatisticsRequest, pb.ModelStatisticsResponse
            ),
            "RepositoryIndex": _unary(
                self.repository_index, pb.RepositoryIndexRequest, pb.RepositoryIndexResponse
            ),
            "RepositoryModelLoad": _unary(
                self.load, pb.RepositoryModelLoadRequest, pb.RepositoryModelLoadResponse
            ),
            "RepositoryModelUnload": _unary(
                self.unload, pb.RepositoryModelUnloadRequest, pb.RepositoryModelUnloadResponse
            ),
        }

    async def server_live(self, _: Any, __: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.dataplane.live())

    async def server_ready(self, _: Any, __: Context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    async def model_ready(self, req: pb.ModelReadyRequest, _: Context) -> pb.ModelReadyResponse:
        # Triton answers "not ready" rather than an error for an unknown model; so do we.
        try:
            ready = self.dataplane.model_ready(req.name, req.version or None)
        except InferdError:
            ready = False
        return pb.ModelReadyResponse(ready=ready)

    async def server_metadata(self, _: Any, __: Context) -> pb.ServerMetadataResponse:
        return messages.server_metadata(self.dataplane.server_metadata())

    async def model_metadata(
        self, req: pb.ModelMetadataRequest, _: Context
    ) -> pb.ModelMetadataResponse:
        return messages.model_metadata(self.dataplane.model_metadata(req.name, req.version or None))

    async def model_config(self, req: pb.ModelConfigRequest, _: Context) -> pb.ModelConfigResponse:
        return messages.model_config(self.dataplane.model_config(req.name, req.version or None))

    async def model_statistics(
        self, req: pb.ModelStatisticsRequest, _: Context
    ) -> pb.ModelStatisticsResponse:
        doc = self.dataplane.statistics(req.name or None, req.version or None)
        return messages.statistics(doc)

    async def repository_index(
        self, req: pb.RepositoryIndexRequest, _: Context
    ) -> pb.RepositoryIndexResponse:
        return messages.repository_index(self.dataplane.repository_index(), req.ready)

    async def load(
        self, req: pb.RepositoryModelLoadRequest, _: Context
    ) -> pb.RepositoryModelLoadResponse:
        _refuse_load_parameters(req.parameters)
        await self.dataplane.load_model(req.model_name)
        return pb.RepositoryModelLoadResponse()

    async def unload(
        self, req: pb.RepositoryModelUnloadRequest, _: Context
    ) -> pb.RepositoryModelUnloadResponse:
        await self.dataplane.unload_model(req.model_name)
        return pb.RepositoryModelUnloadResponse()

    async def model_infer(self, msg: pb.ModelInferRequest, context: Context) -> Any:
        if self._tracing is None:
            return await self._infer(msg, context, unary=True)
        with self._trace("ModelInfer", msg, context) as trace:
            # Initial metadata, so that a failed call's caller learns the ids too.
            ids = []
            if self._tracing.tracer is not None:
                ids.append((TRACE_ID_HEADER, trace.trace_id))
            if self._tracing.log_ids:  # the request id matters for the logs' sake
                ids.append((REQUEST_ID_HEADER, trace.request_id))
            if ids:
                await context.send_initial_metadata(ids)
            return await self._infer(msg, context, unary=True)

    async def _stream_one(self, msg: pb.ModelInferRequest, context: Context) -> Any:
        """One request of a stream; its trace id goes in the response's parameters."""
        if self._tracing is None:
            return await self._infer(msg, context)
        with self._trace("ModelStreamInfer", msg, context) as trace:
            response = await self._infer(msg, context)
            if self._tracing.tracer is not None:
                response.parameters["trace_id"].string_param = trace.trace_id
            return response

    def _trace(self, rpc: str, msg: pb.ModelInferRequest, context: Context) -> RequestTrace:
        assert self._tracing is not None  # only called with tracing on
        found: dict[str, str] = {}
        for key, value in context.invocation_metadata() or ():
            if key in ("traceparent", "tracestate"):
                found[key] = value if isinstance(value, str) else value.decode("latin-1")
        trace = self._tracing.request(
            f"{SERVICE}/{rpc}", found.get("traceparent"), found.get("tracestate"), msg.id or None
        )
        if trace.sampled:
            trace.set_attributes({"rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": rpc})
        return trace

    async def _infer(self, msg: pb.ModelInferRequest, context: Context, unary: bool = False) -> Any:
        """Decode, infer, encode. ``unary``: a ModelInfer call, whose trailing metadata names
        the experiment variant or rollout arm that served it, as the HTTP header does (a
        stream's answers name it in their parameters only)."""
        try:
            request = decode_infer_request(msg, context.time_remaining())
            if self.limits is not None:
                self.limits.check(request)
            explain = wants_explanation(request.parameters)
        except InferdError as err:
            self.dataplane.record_rejected(msg.model_name, "grpc", err.http_status)
            raise
        if self._tracing is not None:
            annotate_current(request.id, request.model_name, request.model_version)
        if explain:  # attributions instead of outputs (docs/explanations.md)
            return encode_infer_response(await self.explanations.answer(self.dataplane, request))
        keys = self.dataplane.routing_headers  # empty unless an experiment routes by metadata
        found = _routing_metadata(context, keys) if keys else None
        response = await self.dataplane.infer(request, "grpc", found)
        if unary and response.headers:
            context.set_trailing_metadata([(k.decode(), v.decode()) for k, v in response.headers])
        return encode_infer_response(response)

    async def model_stream_infer(
        self, requests: AsyncIterator[pb.ModelInferRequest], context: Context
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Answer each request of the stream as soon as it is done, in any order.

        A failed request gets a response with ``error_message`` (and its id) and the stream
        goes on, as Triton does; clients match responses to requests by id.
        """
        answers: asyncio.Queue[pb.ModelStreamInferResponse | None] = asyncio.Queue()
        running: set[asyncio.Task[None]] = set()

        async def answer(msg: pb.ModelInferRequest) -> None:
            try:
                response = await self._stream_one(msg, context)
                answers.put_nowait(pb.ModelStreamInferResponse(infer_response=response))
            except InferdError as err:
                answers.put_nowait(_stream_error(msg, err.message))
            except Exception:
                logger.exception("unexpected error in ModelStreamInfer")
                answers.put_nowait(_stream_error(msg, "internal server error"))

        async def read() -> None:
            try:
                async for msg in requests:
                    task = asyncio.create_task(answer(msg))
                    running.add(task)
                    task.add_done_callback(running.discard)
                while running:
                    await asyncio.wait(set(running))
            finally:
                answers.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (item := await answers.get()) is not None:
                yield item
            await reader  # surfaces a failed read (e.g. the client cancelled)
        finally:
            for task in (reader, *running):
                task.cancel()


def _routing_metadata(context: Context, keys: frozenset[str]) -> dict[str, str]:
    """The call's values of the metadata keys running experiments route by."""
    return {
        key: value if isinstance(value, str) else value.decode("latin-1")
        for key, value in context.invocation_metadata() or ()
        if key in keys
    }


def _stream_error(msg: pb.ModelInferRequest, message: str) -> pb.ModelStreamInferResponse:
    echo = pb.ModelInferResponse(id=msg.id, model_name=msg.model_name)
    echo.model_version = msg.model_version
    return pb.ModelStreamInferResponse(error_message=message, infer_response=echo)


def _refuse_load_parameters(params: Any) -> None:
    for key in params:
        if key != "unload_dependents":
            raise InvalidInput(
                f"parameters.{key}",
                "no parameters (loading with an override config or files is not supported; "
                "edit the model repository and load again)",
                "a value",
            )


def inference_server(
    dataplane: DataPlane,
    host: str,
    port: int,
    *,
    limits: RequestLimits | None = None,
    interceptors: list[grpc.aio.ServerInterceptor] | None = None,
    tls: ServerTls | None = None,
    tracing: Tracing | None = None,
    **options: Any,
) -> GrpcServer:
    """A gRPC server of ``inference.GRPCInferenceService`` over ``dataplane``.

    Args:
        dataplane: the data plane shared with the HTTP app.
        host: address to listen on.
        port: port to listen on; 0 picks a free one.
        limits: size limits on decoded inference requests; None for none.
        interceptors: ``grpc.aio`` server interceptors (authentication).
        tls: the gRPC port's TLS; None listens in plain text.
        tracing: spans (and log ids) for inference calls; None for none.
        **options: the core (``transport``) and its limits, as :class:`GrpcServer` takes them.
    """
    service = InferenceService(dataplane, limits, tracing)
    return GrpcServer(
        {SERVICE: service.handlers()}, dataplane.ready, host, port,
        interceptors=interceptors, tls=tls, **options,
    )  # fmt: skip
