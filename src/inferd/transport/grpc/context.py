"""What a gRPC handler may ask of its call, whichever core serves it.

Both gRPC cores hand handlers a context: grpcio's C-core server a
``grpc.aio.ServicerContext``, inferd's own transport a
:class:`inferd.transport.grpc._call.ServicerContext`. :class:`ServicerContext` here is the
part of them the API layer uses, so handlers are typed once and run on either core.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import grpc

Metadata = Sequence[tuple[str, str | bytes]]


class ServicerContext(Protocol):
    """The call context methods inferd's handlers and interceptors use."""

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()
    ) -> None:
        """End the call with ``code``, ``details`` and trailers; never returns."""

    def peer(self) -> str:
        """``ipv4:host:port`` or ``ipv6:[host]:port`` (grpcio percent-encodes the brackets)."""
        ...

    def time_remaining(self) -> float | None:
        """Seconds left before the caller's deadline; None (or a huge number) without one."""
        ...

    def invocation_metadata(self) -> Iterable[Any] | None:
        """The caller's metadata: ``(key, value)`` pairs, ``-bin`` values as bytes."""
        ...

    async def send_initial_metadata(self, initial_metadata: Metadata) -> None:
        """Send the response headers now, with these metadata (before any message)."""

    def set_trailing_metadata(self, trailing_metadata: Metadata) -> None:
        """Metadata to send with the status when the call ends."""
