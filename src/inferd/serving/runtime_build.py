"""Building a version's runtimes: the one the model manager loads, and the extra copies a
runtime that is not thread-safe needs, one per instance (``Runtime.thread_safe``).

Both block (frameworks read files, the trust check resolves paths): callers run them in a
worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from inferd.config import ModelConfig
from inferd.runtimes import Runtime, runtime_class
from inferd.runtimes.base import MemoryUsage
from inferd.runtimes.trust import check_code_root
from inferd.types import Signature


def build_runtime(
    config: ModelConfig, artifact: Path, code_roots: Sequence[Path] | None
) -> tuple[Runtime, Signature, MemoryUsage]:
    """Check the artifact may run, load and warm a runtime (blocking)."""
    check_code_root(config, artifact, code_roots)
    runtime = runtime_class(config.platform)(config, artifact, config.device)
    runtime.load()
    try:
        signature = runtime.signature()
        if config.warmup.enabled:
            runtime.warmup(warmup_sizes(config), config.warmup.iterations)
    except Exception:
        runtime.unload()
        raise
    return runtime, signature, runtime.memory_usage()


def warmup_sizes(config: ModelConfig) -> list[int]:
    """The warm-up batch sizes of ``config``, within its ``max_batch_size``."""
    limit = max(config.max_batch_size, 1)
    return sorted({min(s, limit) for s in config.warmup.batch_sizes}) or [1]


async def build_copies(
    config: ModelConfig, artifact: Path, code_roots: Sequence[Path] | None, count: int
) -> list[Runtime]:
    """``count`` more loaded runtimes of one version, each in a worker thread; on a failure
    the ones already built are unloaded and the error raised."""
    copies: list[Runtime] = []
    try:
        for _ in range(count):
            copy, _, _ = await asyncio.to_thread(build_runtime, config, artifact, code_roots)
            copies.append(copy)
    except BaseException:
        for copy in copies:
            await asyncio.to_thread(copy.unload)
        raise
    return copies
