"""Request coalescing: identical requests in flight share one inference."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Runs one call per key at a time; callers with the same key meanwhile await it.

    The shared call runs as its own task, so a caller that is cancelled stops waiting without
    cancelling it for the others (it still completes, and its answer can fill a cache). Its
    exception reaches every caller that awaited it.
    """

    def __init__(self) -> None:
        self._flights: dict[bytes, asyncio.Future[T]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    async def run(self, key: bytes, call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Await the call in flight under ``key``, or start ``call()`` as it.

        Returns:
            The result, and True for the caller whose ``call`` ran (the leader).
        """
        flight = self._flights.get(key)
        leader = flight is None
        if flight is None:
            flight = asyncio.ensure_future(call())
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(flight), leader

    def _landed(self, key: bytes, flight: asyncio.Future[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved: no "never retrieved" log when every waiter left
