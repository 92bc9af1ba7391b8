"""The gRPC service: ``inference.GRPCInferenceService`` on inferd's own gRPC transport.

The server runs on the event loop of the HTTP app and calls the very same
:class:`~inferd.serving.dataplane.DataPlane`, so an HTTP and a gRPC request for one model
version can share a batch, and metrics and statistics count both. Each RPC is a few lines:
decode, call the data plane, encode. :func:`_status` maps errors to gRPC status codes, in
this one place. The standard health checking service (``grpc.health.v1.Health``, SERVING
once the data plane is ready) and server reflection run beside it. The transport
(:mod:`inferd.server.grpc_transport`, over :mod:`inferd.server.http2`) takes grpc.aio's
handlers and interceptors; it replaced grpc.aio's server, whose per-call cost was the
bottleneck of unary calls (see docs/triton.md).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from inferd.errors import ConfigError, InferdError, InvalidInput
from inferd.protocol import grpc_messages as messages
from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol._gen import model_config_pb2
from inferd.protocol.grpc_codec import SERVICE, decode_infer_request, encode_infer_response
from inferd.security.limits import RequestLimits
from inferd.server._grpc_call import ServicerContext
from inferd.server.grpc_transport import GrpcTransportServer
from inferd.serving.dataplane import DataPlane

logger = logging.getLogger(__name__)

Context = ServicerContext
_HEALTH_POLL_S = 0.5
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _status(err: InferdError) -> tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]:
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
            code, details, trailers = _status(err)
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
    """

    def __init__(self, dataplane: DataPlane, limits: RequestLimits | None = None) -> None:
        self.dataplane = dataplane
        self.limits = limits

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
        try:
            request = decode_infer_request(msg, context.time_remaining())
            if self.limits is not None:
                self.limits.check(request)
        except InferdError as err:
            self.dataplane.record_rejected(msg.model_name, "grpc", err.http_status)
            raise
        return encode_infer_response(await self.dataplane.infer(request, "grpc"))

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
                response = await self.model_infer(msg, context)
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


def _reflection_pool() -> descriptor_pool.DescriptorPool:
    # Our messages live in a private pool (see scripts/gen_grpc.sh); reflection needs one pool
    # holding every service it names.
    pool = descriptor_pool.DescriptorPool()
    for module in (model_config_pb2, pb, health_pb2, reflection_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)  # type: ignore[no-untyped-call]
    return pool


class GrpcServer:
    """The gRPC server of one process, with health checking and reflection.

    Args:
        dataplane: the data plane shared with the HTTP app.
        host: address to listen on.
        port: port to listen on; 0 picks a free one (see :attr:`port` after start).
        max_message_bytes: largest request and response message; larger ones get
            RESOURCE_EXHAUSTED.
        reuse_port: let several processes listen on the port (``--workers N``). Off for one
            process, so that a port already in use fails the start instead of being shared.
        interceptors: ``grpc.aio`` server interceptors (authentication); none by default.
        ssl_context: TLS (with ALPN ``h2``); None listens in plain text.
        limits: size limits on decoded inference requests.
        max_connections: connections served at once (``--max-connections``).
        request_read_timeout_s: how long a unary call's request may take to arrive whole.
        max_buffered_bytes: request bytes still arriving held at most, over all connections.
    """

    def __init__(
        self,
        dataplane: DataPlane,
        host: str,
        port: int,
        *,
        max_message_bytes: int = 64 * 1024 * 1024,
        reuse_port: bool = False,
        interceptors: list[grpc.aio.ServerInterceptor] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        limits: RequestLimits | None = None,
        max_connections: int = 2048,
        request_read_timeout_s: float = 30.0,
        max_buffered_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self.dataplane = dataplane
        self.host = host
        self.port = port
        self._reuse_port = reuse_port
        self._ssl = ssl_context
        self._server = GrpcTransportServer(
            interceptors=interceptors or (), max_message_bytes=max_message_bytes,
            max_connections=max_connections, request_read_timeout_s=request_read_timeout_s,
            max_buffered_bytes=max_buffered_bytes,
        )  # fmt: skip
        service = InferenceService(dataplane, limits)
        self._server.add_registered_method_handlers(SERVICE, service.handlers())
        self._health = health.aio.HealthServicer()
        # Typed for grpc.aio.Server; it only calls the two add_*_handlers methods ours has.
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)  # type: ignore[arg-type]
        names = (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(  # type: ignore[no-untyped-call]
            reflection.aio.ReflectionServicer(names, pool=_reflection_pool()), self._server
        )
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Bind and start serving; return the bound port.

        Raises:
            ConfigError: the port cannot be bound.
        """
        try:
            self.port = await self._server.start(
                self.host, self.port, ssl_context=self._ssl, reuse_port=self._reuse_port
            )
        except OSError as err:
            address = f"{_bracket(self.host)}:{self.port}"
            problem = f"cannot listen on {address} ({err}); pass a free port with --grpc-port"
            raise ConfigError("settings", "grpc_port", problem) from err
        self._watch = asyncio.create_task(self._watch_readiness())
        return self.port

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls, give running ones ``grace_s`` seconds, then close."""
        if self._watch is not None:
            self._watch.cancel()
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace_s)

    async def _watch_readiness(self) -> None:
        serving = None
        while True:
            ready = self.dataplane.ready()
            if ready != serving:
                status = _SERVING if ready else _NOT_SERVING
                for name in ("", SERVICE):
                    await self._health.set(name, status)
                serving = ready
            await asyncio.sleep(_HEALTH_POLL_S)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
