"""The asyncio client: :class:`AsyncClient`, the awaitable twin of :class:`Client`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import grpc
import httpx
import numpy as np

from inferd.client._client import (
    DEFAULT_TIMEOUT_S,
    error_from_grpc,
    error_from_transport,
    parse_url,
    read_http,
)
from inferd.client._grpc import GrpcCall, GrpcProtocol
from inferd.client._http import HttpCall, HttpProtocol
from inferd.client._tls import Tls, grpc_channel, http_verify
from inferd.client._types import ClientError, InferResult, Retry

T = TypeVar("T")


class AsyncClient:
    """An asyncio client over HTTP or gRPC; the same calls as :class:`Client`, awaitable.

    Args:
        url: ``http://host:8000`` or ``grpc://host:8001`` (``https://`` and ``grpcs://`` for
            TLS).
        timeout: seconds per call unless a call says otherwise.
        retry: the retry policy for 503 / UNAVAILABLE.
        binary: HTTP only: binary tensor extension (default) or JSON.
        max_message_bytes: gRPC only: largest message sent or received.
        api_key: API key sent with every call (``Authorization: Bearer``, gRPC metadata
            ``authorization``); default ``$INFERD_API_KEY``. A JWT works the same way.
        tls: the CA to trust and the client certificate (mTLS) for ``https://`` and
            ``grpcs://``; None: the system trust store and no client certificate.

    Example:
        >>> async with AsyncClient("http://localhost:8000") as client:
        ...     result = await client.infer("linear", {"x": np.ones(3, dtype=np.float32)})
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: Retry | None = None,
        binary: bool = True,
        max_message_bytes: int = 64 * 1024 * 1024,
        api_key: str | None = None,
        tls: Tls | None = None,
    ) -> None:
        scheme, base = parse_url(url)
        api_key = api_key or os.environ.get("INFERD_API_KEY") or None
        auth = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._metadata = tuple(auth.items()) or None
        self.timeout = timeout
        self.retry = retry or Retry()
        self._http: httpx.AsyncClient | None = None
        self._channel: grpc.aio.Channel | None = None
        self._protocol: HttpProtocol | GrpcProtocol
        if scheme in ("grpc", "grpcs"):
            options = [
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
            ]
            self._channel = grpc_channel(scheme, base, options, tls, aio=True)
            self._protocol = GrpcProtocol()
        else:
            self._http = httpx.AsyncClient(
                base_url=base, timeout=timeout, headers=auth, verify=http_verify(tls)
            )
            self._protocol = HttpProtocol(binary)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections."""
        if self._http is not None:
            await self._http.aclose()
        if self._channel is not None:
            await self._channel.close()

    async def live(self) -> bool:
        return await self._run(self._protocol.live())

    async def ready(self) -> bool:
        return await self._run(self._protocol.ready())

    async def server_metadata(self) -> dict[str, Any]:
        return await self._run(self._protocol.server_metadata())

    async def model_metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        return await self._run(self._protocol.model_metadata(model, version))

    async def model_ready(self, model: str, version: str | None = None) -> bool:
        return await self._run(self._protocol.model_ready(model, version))

    async def model_config(self, model: str, version: str | None = None) -> dict[str, Any]:
        return await self._run(self._protocol.model_config(model, version))

    async def statistics(
        self, model: str | None = None, version: str | None = None
    ) -> dict[str, Any]:
        return await self._run(self._protocol.statistics(model, version))

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        *,
        version: str | None = None,
        outputs: Sequence[str] | None = None,
        request_id: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        # The same keyword as Client.infer; it becomes the gRPC deadline the server honours.
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> InferResult:
        """Run one inference request; see :meth:`Client.infer`."""
        call = self._protocol.infer(model, inputs, version, outputs, request_id, parameters)
        return await self._run(call, timeout)

    async def repository_index(self) -> list[dict[str, Any]]:
        return await self._run(self._protocol.repository_index())

    async def load_model(self, model: str) -> None:
        await self._run(self._protocol.load_model(model))

    async def unload_model(self, model: str) -> None:
        await self._run(self._protocol.unload_model(model))

    async def management(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> Any:
        """Call the management API (``/v1/...``); HTTP only."""
        if not isinstance(self._protocol, HttpProtocol):
            raise ClientError(
                "management calls need an http:// URL", status=None, code="UNIMPLEMENTED"
            )
        return await self._run(self._protocol.management(method, path, body))

    async def _run(self, call: HttpCall[T] | GrpcCall[T], limit_s: float | None = None) -> T:
        seconds = self.timeout if limit_s is None else limit_s
        attempt = 1
        while True:
            try:
                return await self._send(call, seconds)
            except ClientError as err:
                if not err.retryable or attempt >= self.retry.attempts:
                    raise
                await asyncio.sleep(self.retry.delay(attempt, err))
                attempt += 1

    async def _send(self, call: HttpCall[T] | GrpcCall[T], seconds: float) -> T:
        if isinstance(call, GrpcCall) and self._channel is not None:
            stub = self._channel.unary_unary(
                call.method,
                request_serializer=type(call.request).SerializeToString,
                response_deserializer=call.response_type.FromString,
            )
            try:
                answer = await stub(call.request, timeout=seconds, metadata=self._metadata)
                return call.parse(answer)
            except grpc.RpcError as err:
                raise error_from_grpc(err) from None
        if isinstance(call, HttpCall) and self._http is not None:
            try:
                response = await self._http.request(
                    call.method, call.path, content=call.body, headers=call.headers,
                    timeout=seconds,
                )  # fmt: skip
            except httpx.TransportError as err:
                raise error_from_transport(err, seconds) from err
            return read_http(call, response)
        raise TypeError(f"{type(call).__name__} does not fit this client's protocol")
