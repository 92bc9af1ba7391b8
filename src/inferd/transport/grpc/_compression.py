"""Compressed gRPC request messages (``grpc-encoding: gzip | deflate``), inflated safely.

A message of 1 MB can inflate to 1 GiB (deflate reaches about 1,000:1). So a message is
never inflated whole and then measured: :class:`Inflation` stops one byte past the message
limit (``zlib.decompressobj().decompress(data, max_length)``), and only its first
``INLINE_BYTES`` are inflated on the event loop; the rest runs on one worker thread of its
own (zlib releases the GIL), so a compression bomb costs at most one core for a bounded
time and never stalls the loop or takes the runtimes' threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from concurrent.futures import ThreadPoolExecutor

# grpc-encoding -> zlib window bits (gzip header and trailer, or the zlib format).
WBITS: dict[bytes, int] = {b"gzip": 16 + zlib.MAX_WBITS, b"deflate": zlib.MAX_WBITS}
ACCEPTED = b"identity,gzip,deflate"
# Output inflated on the event loop before the rest moves to the worker thread: what a
# legitimate small message needs, and at most ~0.3 ms of a bomb.
INLINE_BYTES = 256 * 1024


# Messages waiting for (or on) the worker thread at most; more get RESOURCE_EXHAUSTED, so
# that compressed messages cannot queue up in memory faster than they are inflated.
MAX_WAITING = 4


class InflaterBusy(Exception):
    """Too many large compressed messages wait to be inflated."""

    def __init__(self) -> None:
        super().__init__(
            f"more than {MAX_WAITING} large compressed messages wait to be inflated; "
            "retry, or send them uncompressed"
        )


class MessageTooLarge(Exception):
    """The message inflates to more than the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"received message larger than max (more than {limit} bytes inflated)")


class Inflation:
    """One compressed message, inflated in steps up to ``limit`` bytes.

    Args:
        data: the compressed message.
        wbits: zlib window bits (:data:`WBITS`).
        limit: the largest inflated size accepted.
    """

    __slots__ = ("_chunks", "_size", "_tail", "_zlib", "limit")

    def __init__(self, data: bytes, wbits: int, limit: int) -> None:
        self._zlib = zlib.decompressobj(wbits)
        self._tail = data
        self._chunks: list[bytes] = []
        self._size = 0
        self.limit = limit

    def run(self, until: int) -> bool:
        """Inflate until ``until`` bytes are out or the message ends; True at its end.

        Raises:
            zlib.error: the data is corrupt or truncated.
            MessageTooLarge: the message inflates past ``limit``.
        """
        z = self._zlib
        while self._size < until:
            want = min(until, self.limit + 1) - self._size
            chunk = z.decompress(self._tail, want)
            self._tail = z.unconsumed_tail
            self._chunks.append(chunk)
            self._size += len(chunk)
            if self._size > self.limit:
                # Drop the output now: the exception (and its traceback, which holds this
                # frame) may live on in a future nobody reads once the call is cancelled.
                chunk, self._chunks, self._tail = b"", [], b""
                raise MessageTooLarge(self.limit)
            if z.eof:
                return True
            if not self._tail and len(chunk) < want:
                raise zlib.error("incomplete or truncated stream")
        return False

    def result(self) -> bytes:
        """The inflated message (after :meth:`run` returned True)."""
        return b"".join(self._chunks)


def _run_to_end(inflation: Inflation) -> MessageTooLarge | zlib.error | None:
    """Inflate the rest on the worker thread; the error, if any, returned without its
    traceback. Raised there, it would sit in the future with the frames it passed through,
    in a reference cycle that holds the message until the collector runs."""
    try:
        inflation.run(inflation.limit + 1)
    except (MessageTooLarge, zlib.error) as err:
        return err.with_traceback(None)
    return None


class Inflater:
    """Inflates messages: the first ``INLINE_BYTES`` at once, the rest on one thread."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None  # made at first use
        self._waiting = 0

    async def inflate(self, data: bytes, wbits: int, limit: int) -> bytes:
        """The inflated message.

        Raises:
            zlib.error: the data is corrupt or truncated.
            MessageTooLarge: the message inflates past ``limit``.
            InflaterBusy: ``MAX_WAITING`` messages already wait for the worker thread.
        """
        inflation = Inflation(data, wbits, limit)
        if inflation.run(INLINE_BYTES):
            return inflation.result()
        if self._waiting >= MAX_WAITING:
            raise InflaterBusy
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="inferd-inflate")
        self._waiting += 1
        loop = asyncio.get_running_loop()
        work = self._executor.submit(_run_to_end, inflation)
        # Counted until the thread is done with it, even when the call is cancelled before.
        work.add_done_callback(lambda _: self._done_in_thread(loop))
        problem = await asyncio.wrap_future(work)
        if problem is None:
            return inflation.result()
        try:
            raise problem
        finally:
            # The traceback holds this frame, and the frame would hold the error through
            # these (a cycle that keeps the compressed message until the collector runs).
            problem = work = None  # type: ignore[assignment]

    def _done_in_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to count
            loop.call_soon_threadsafe(self._done)

    def _done(self) -> None:
        self._waiting -= 1

    def close(self) -> None:
        """Stop the worker thread (after the message it may be inflating)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
