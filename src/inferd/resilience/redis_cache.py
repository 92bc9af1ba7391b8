"""The shared cache tier: answers in Redis, seen by every replica.

A Redis that is down, slow or wrong never fails a request: each failure is counted and the
request carries on with the in-process cache alone; after a failure Redis is left alone for
``backoff_s`` so requests do not each wait on a dead connection.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from inferd.resilience.cache import Outputs

logger = logging.getLogger(__name__)
PREFIX = b"inferd:cache:"


def encode_outputs(outputs: Outputs) -> bytes | None:
    """A header line (JSON: name, dtype, shape) and the arrays' bytes; None for BYTES outputs,
    which stay in the in-process tier (no pickle: a shared store must not run code)."""
    header = []
    for name, array in outputs.items():
        if array.dtype == object:
            return None
        header.append([name, array.dtype.str, list(array.shape)])
    body = b"".join(np.ascontiguousarray(a).tobytes() for a in outputs.values())
    return json.dumps(header).encode() + b"\n" + body


def decode_outputs(raw: bytes) -> Outputs:
    """The inverse of :func:`encode_outputs`.

    Raises:
        ValueError: the bytes are not an encoded answer.
    """
    line, _, body = raw.partition(b"\n")
    outputs: Outputs = {}
    offset = 0
    for name, dtype, shape in json.loads(line):
        array = np.frombuffer(body, np.dtype(dtype), int(np.prod(shape)), offset).reshape(shape)
        offset += array.nbytes
        outputs[name] = array
    if offset != len(body):
        raise ValueError(f"expected {offset} bytes of tensor data, got {len(body)}")
    return outputs


class RedisCache:
    """Answers under ``inferd:cache:<key>`` with a TTL, through redis-py's asyncio client.

    Args:
        url: ``redis://host:port/db``.
        timeout_s: socket and connect timeout of each call.
        backoff_s: seconds Redis is skipped after a failure.
        on_error: called with the operation (``get``/``set``) of each failure.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self, url: str, timeout_s: float = 0.05, backoff_s: float = 5.0,
        on_error: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.url = url
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self._on_error = on_error
        self._clock = clock
        self._client: Any = None
        self._skip_until = 0.0

    def _redis(self) -> Any:
        if self._client is None:  # created on the event loop that uses it
            import redis.asyncio as redis  # the `cache` extra

            self._client = redis.Redis.from_url(
                self.url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s
            )
        return self._client

    async def get(self, key: bytes) -> Outputs | None:
        """The shared answer, or None (absent, or Redis unavailable)."""
        if self._clock() < self._skip_until:
            return None
        try:
            raw = await self._redis().get(PREFIX + key)
            return None if raw is None else decode_outputs(raw)
        except Exception as err:  # any Redis failure degrades to local
            self._failed("get", err)
            return None

    async def set(self, key: bytes, outputs: Outputs, ttl_s: float) -> None:
        """Share an answer for ``ttl_s`` seconds; failures are counted, never raised."""
        raw = encode_outputs(outputs)
        if raw is None or self._clock() < self._skip_until:
            return
        try:
            await self._redis().set(PREFIX + key, raw, px=max(1, int(ttl_s * 1000)))
        except Exception as err:
            self._failed("set", err)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _failed(self, operation: str, err: Exception) -> None:
        self._skip_until = self._clock() + self.backoff_s
        logger.warning("redis cache %s failed (%s); local cache only for %g s",
                       operation, err, self.backoff_s)  # fmt: skip
        if self._on_error is not None:
            self._on_error(operation)
