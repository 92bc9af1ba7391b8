"""Lookups of concurrent requests joined into one store call.

While a call is in flight, the keys of new requests wait for the next one (the dynamic
batcher's rule with no added delay): one request alone pays one round trip; under load, one
round trip (one thread hop and one ``SELECT ... IN``, or one ``MGET``) answers dozens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from inferd.resilience.tables import LOOKUP_MAX_KEYS

Fetch = Callable[[str, Sequence[str]], Awaitable[dict[str, bytes]]]
_Waiter = tuple[Sequence[str], "asyncio.Future[dict[str, bytes]]"]


class LookupBatcher:
    """Joins the lookups of one event loop, per table, into calls of at most ``max_keys``.

    Args:
        fetch: ``(table id, keys) -> {key: row}`` for the keys the table holds.
        max_keys: keys per call.
    """

    def __init__(self, fetch: Fetch, max_keys: int = LOOKUP_MAX_KEYS) -> None:
        self._fetch = fetch
        self.max_keys = max_keys
        self._queues: dict[str, list[_Waiter]] = {}
        self._running: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, table_id: str, keys: Sequence[str]) -> dict[str, bytes]:
        """The rows of ``keys`` that the table holds.

        Raises:
            Exception: whatever the store call raised, for every request it served.
        """
        future: asyncio.Future[dict[str, bytes]] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(table_id, []).append((keys, future))
        if table_id not in self._running:
            self._running.add(table_id)
            task = asyncio.create_task(self._drain(table_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self, table_id: str) -> None:
        try:
            while queue := self._queues.pop(table_id, None):
                while queue:
                    taken, queue = _take(queue, self.max_keys)
                    await self._call(table_id, taken)
                    if queue:  # over max_keys: the rest joins what arrived meanwhile
                        self._queues.setdefault(table_id, [])[:0] = queue
                        break
        finally:
            self._running.discard(table_id)

    async def _call(self, table_id: str, waiters: list[_Waiter]) -> None:
        keys = sorted({k for wanted, _ in waiters for k in wanted})
        try:
            found = await self._fetch(table_id, keys)
        except Exception as err:
            for _, future in waiters:
                if not future.done():
                    future.set_exception(err)
            return
        for _, future in waiters:
            if not future.done():  # a waiter cancelled (client gone) takes nothing
                future.set_result(found)


def _take(queue: list[_Waiter], max_keys: int) -> tuple[list[_Waiter], list[_Waiter]]:
    """Waiters from the front holding at most ``max_keys`` keys (always at least one)."""
    count = 0
    for index, (keys, _) in enumerate(queue):
        count += len(keys)
        if count > max_keys and index > 0:
            return queue[:index], queue[index:]
    return queue, []
