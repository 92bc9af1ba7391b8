"""Rows of precomputed tables kept in Redis (``store: redis``), shared by every replica.

Each row is one string ``inferd:pre:<table id>:<entity id>`` holding the row's
:class:`RowLayout` bytes. Publishing writes them with pipelined ``MSET`` batches (a blocking
client: the publisher runs in a thread); serving reads them with ``MGET`` (the asyncio client).
The table's record stays in the registry database, as for ``db`` tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

PREFIX = "inferd:pre:"


def row_key(table_id: str, entity: str) -> bytes:
    return f"{PREFIX}{table_id}:{entity}".encode()


class RedisRowWriter:
    """Bulk writes and deletes of a table's rows (blocking, redis-py).

    Args:
        url: ``redis://host:port/db``.
        timeout_s: socket timeout of each pipelined call.
    """

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        import redis  # the `cache` extra

        self.url = url
        self._client = redis.Redis.from_url(url, socket_timeout=timeout_s)

    def write_rows(self, table_id: str, rows: Sequence[tuple[str, bytes]]) -> None:
        """Write one batch of rows in one round trip (one MSET per 1,000 rows, pipelined)."""
        pipe = self._client.pipeline(transaction=False)
        for start in range(0, len(rows), 1000):
            pipe.mset({row_key(table_id, k): v for k, v in rows[start : start + 1000]})
        pipe.execute()

    def delete_rows(self, table_id: str) -> int:
        """Unlink every row of the table; return how many."""
        removed = 0
        pattern = f"{PREFIX}{table_id}:*"
        batch: list[bytes] = []
        for key in self._client.scan_iter(match=pattern, count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                removed += self._client.unlink(*batch)
                batch = []
        if batch:
            removed += self._client.unlink(*batch)
        return removed

    def close(self) -> None:
        self._client.close()


class RedisRowReader:
    """``MGET`` of looked-up rows through redis-py's asyncio client.

    Failures raise to the caller (the lookup counts and logs them and answers online); after
    one, Redis is skipped for ``backoff_s`` so requests do not each wait on a dead connection.

    Args:
        url: ``redis://host:port/db``.
        timeout_s: socket and connect timeout of each call.
        backoff_s: seconds Redis is skipped after a failure.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self, url: str, timeout_s: float = 0.2, backoff_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.url = url
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self._clock = clock
        self._client: Any = None
        self._skip_until = 0.0

    async def lookup(self, table_id: str, keys: Sequence[str]) -> dict[str, bytes]:
        """The rows of ``keys`` the table holds.

        Raises:
            ConnectionError: Redis failed now or did recently (backing off).
        """
        if self._clock() < self._skip_until:
            raise ConnectionError("redis skipped after a recent failure")
        if self._client is None:  # created on the event loop that uses it
            import redis.asyncio as redis

            self._client = redis.Redis.from_url(
                self.url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s
            )
        try:
            values = await self._client.mget([row_key(table_id, k) for k in keys])
        except Exception as err:
            self._skip_until = self._clock() + self.backoff_s
            raise ConnectionError(str(err)) from err
        return {k: v for k, v in zip(keys, values, strict=True) if v is not None}

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
