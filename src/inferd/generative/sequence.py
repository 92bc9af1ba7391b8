"""One sequence in the engine, and the stream its events reach a caller through.

The engine thread owns every field of a :class:`Sequence` except ``cancelled``, which any
thread may set; the engine frees the sequence's slot at its next step.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from inferd.generative.sampling import SamplingParams, TokenLogprob
from inferd.generative.text import TextStream

_ids = itertools.count()


@dataclass(frozen=True, slots=True)
class Event:
    """Text a sequence produced, or its end.

    Attributes:
        text: new visible text (may be empty: held back for a possible stop string).
        token: the token sampled, or None on the final event.
        finish: None while running; ``stop`` (end-of-sequence token or stop string),
            ``length`` (max_tokens or the context), ``cancelled`` or ``error`` at the end.
        prompt_tokens: tokens in the prompt.
        completion_tokens: tokens generated so far.
        error: what failed, with ``finish == "error"``.
        logprobs: the log-probabilities of the tokens this event adds to the output (one, or
            none: asked for none, or the end-of-sequence token, which is not output).
    """

    text: str
    token: int | None
    finish: str | None
    prompt_tokens: int
    completion_tokens: int
    error: str = ""
    logprobs: tuple[TokenLogprob, ...] = ()


Sink = Callable[[Event], None]


@dataclass(eq=False)
class Sequence:
    """A prompt being continued; created by :meth:`inferd.generative.engine.Engine.submit`."""

    prompt: list[int]
    params: SamplingParams
    text: TextStream
    sink: Sink
    generator: Any
    penalties: Any = None  # inferd.generative.penalties.Penalties when a penalty is set
    id: int = field(default_factory=lambda: next(_ids))
    prefilled: int = 0  # prompt tokens in the KV cache
    cache: Any = None  # the sequence's own cache while its prompt is prefilled
    output: list[int] = field(default_factory=list)
    cancelled: bool = False
    finish: str | None = None
    submitted: float = field(default_factory=time.perf_counter)
    last_token_at: float = 0.0

    @property
    def length(self) -> int:
        """Tokens in the KV cache: the prompt and every output token but the last."""
        return len(self.prompt) + max(0, len(self.output) - 1)

    def event(
        self, text: str, token: int | None, finish: str | None, error: str = "",
        logprobs: tuple[TokenLogprob, ...] = (),
    ) -> Event:  # fmt: skip
        return Event(text, token, finish, len(self.prompt), len(self.output), error, logprobs)


class AsyncStream:
    """A sequence's events on an event loop; ``cancel`` (or leaving early) frees its slot.

    Args:
        loop: the loop the consumer runs on.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self.sequence: Sequence | None = None

    def sink(self, event: Event) -> None:
        """Called on the engine thread."""
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    def cancel(self) -> None:
        if self.sequence is not None:
            self.sequence.cancelled = True

    async def __aiter__(self) -> AsyncIterator[Event]:
        try:
            while True:
                event = await self._queue.get()
                yield event
                if event.finish is not None:
                    return
        finally:  # the consumer stopped early (client gone): free the slot
            self.cancel()


class SyncStream:
    """A sequence's events for a blocking caller (the V2 infer path, benchmarks)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Event] = queue.Queue()

    def sink(self, event: Event) -> None:
        self._queue.put(event)

    def result(self, timeout: float | None = None) -> tuple[str, Event]:
        """Block until the sequence ends; return its whole text and its final event."""
        parts = []
        while True:
            event = self._queue.get(timeout=timeout)
            parts.append(event.text)
            if event.finish is not None:
                return "".join(parts), event
