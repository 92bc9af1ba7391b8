"""In-process prediction cache: LRU bounded in bytes, entries expire after a TTL."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Outputs = dict[str, np.ndarray]
KEY_OVERHEAD_BYTES = 128  # the key, the entry and the dict slot, roughly


def outputs_bytes(outputs: Outputs) -> int:
    """Bytes an answer holds: array data, BYTES items by their length."""
    total = 0
    for array in outputs.values():
        if array.dtype == object:
            total += sum(len(item) if isinstance(item, bytes | str) else 8 for item in array.flat)
            total += 8 * array.size
        else:
            total += array.nbytes
    return total + KEY_OVERHEAD_BYTES


@dataclass(slots=True)
class _Entry:
    outputs: Outputs
    size: int
    expires: float


class LocalCache:
    """LRU of answers by key, at most ``max_bytes`` in all, each valid for ``ttl_s``.

    Not thread-safe: it lives on the event loop. Stored arrays are made read-only, since
    every hit hands out the same arrays.

    Args:
        max_bytes: the bound on :attr:`bytes`; an answer bigger than it is not kept.
        ttl_s: seconds an entry is served after it was put.
        clock: monotonic seconds (injectable for tests).
        on_evict: called with ``"capacity"`` or ``"expired"`` for each entry dropped.
    """

    def __init__(
        self, max_bytes: int, ttl_s: float, clock: Callable[[], float] = time.monotonic,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:  # fmt: skip
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.bytes = 0
        self._clock = clock
        self._on_evict = on_evict
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> Outputs | None:
        """The answer under ``key``, or None when absent or expired (then it is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._drop(key, "expired")
            return None
        self._entries.move_to_end(key)
        return entry.outputs

    def put(self, key: bytes, outputs: Outputs) -> bool:
        """Keep an answer, evicting least recently used ones to fit; False if too big."""
        size = outputs_bytes(outputs)
        if size > self.max_bytes:
            return False
        if key in self._entries:
            self._drop(key, None)
        for array in outputs.values():
            array.setflags(write=False)
        while self.bytes + size > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest, "capacity")
        self._entries[key] = _Entry(outputs, size, self._clock() + self.ttl_s)
        self.bytes += size
        return True

    def _drop(self, key: bytes, reason: str | None) -> None:
        entry = self._entries.pop(key)
        self.bytes -= entry.size
        if reason is not None and self._on_evict is not None:
            self._on_evict(reason)
