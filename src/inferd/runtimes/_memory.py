"""Memory a loaded model version holds: host RSS growth at load plus device allocations.

    Runtime (ABC)
    └── MeasuredRuntime    memory from a LoadMeter taken around load(); 0 after unload()

RSS is read from ``/proc/self/statm`` (Linux); where it cannot be read, or the delta is not
positive because the allocator reused freed pages, the artifact's size stands in.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
from collections.abc import Callable
from types import TracebackType

from inferd.errors import ModelNotReady
from inferd.runtimes.base import MemoryUsage, Runtime
from inferd.types import Signature


def rss_bytes() -> int | None:
    """Resident set size of this process, or None where /proc is unavailable."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            resident_pages = int(statm.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS)
        return None
    return trim


# A full garbage collection pauses every thread (~0.2 s once torch or TensorFlow is imported),
# so unload forces one only when the model is big enough to be worth it; smaller models'
# reference cycles go with Python's next automatic collection.
COLLECT_ABOVE_BYTES = 64 * 1024 * 1024


def release_host_memory(collect: bool = True) -> None:
    """Optionally collect garbage, then hand freed heap pages back to the OS.

    Without ``malloc_trim`` glibc keeps freed arenas mapped, so RSS stays high after a model
    is unloaded and repeated load/unload cycles look like a leak.
    """
    if collect:
        gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class LoadMeter:
    """Context manager measuring host RSS and device memory growth across a load.

    Args:
        device_bytes: returns the bytes currently allocated on the model's device (None for
            a CPU model).
    """

    def __init__(self, device_bytes: Callable[[], int] | None = None) -> None:
        self._device_bytes = device_bytes
        self._rss: tuple[int | None, int | None] = (None, None)
        self._device: tuple[int, int] = (0, 0)

    def __enter__(self) -> LoadMeter:
        self._rss = (rss_bytes(), None)
        self._device = (self._read_device(), 0)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._rss = (self._rss[0], rss_bytes())
        self._device = (self._device[0], self._read_device())

    def usage(self, fallback: int) -> MemoryUsage:
        """The measured usage; ``fallback`` host bytes when RSS did not grow measurably."""
        before, after = self._rss
        host = after - before if before is not None and after is not None else 0
        device = max(self._device[1] - self._device[0], 0)
        return MemoryUsage(host if host > 0 else fallback, device)

    def _read_device(self) -> int:
        return self._device_bytes() if self._device_bytes is not None else 0


class MeasuredRuntime(Runtime):
    """A runtime whose ``load`` records a :class:`MemoryUsage` in ``self._usage`` and the
    signature it settled (artifact and model.yaml merged) in ``self._signature``."""

    _usage: MemoryUsage | None = None
    _signature: Signature | None = None

    def signature(self) -> Signature:
        """The inputs and outputs ``load`` settled."""
        if self._signature is None:
            raise ModelNotReady(self.config.name, self.model_version, "not loaded")
        return self._signature

    def memory_usage(self) -> MemoryUsage:
        """Host and device bytes; the artifact's size before load."""
        if self._usage is None:
            return MemoryUsage(host_bytes=super().memory_bytes())
        return self._usage

    def memory_bytes(self) -> int:
        """Host plus device bytes this version holds (0 after unload)."""
        return self.memory_usage().total

    def _released(self, collect: bool = False) -> None:
        """Record the memory as freed and give it back to the OS; call at the end of unload.

        Args:
            collect: force a full garbage collection (GPU models: their tensors sit in
                reference cycles, and device memory is scarce).
        """
        held = self.memory_usage().total
        self._usage = MemoryUsage()
        release_host_memory(collect=collect or held >= COLLECT_ABOVE_BYTES)
