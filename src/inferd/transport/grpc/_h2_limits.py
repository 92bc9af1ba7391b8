"""Limits and budgets of one HTTP/2 connection: what ends a connection that abuses the protocol.

The attacks answered here are frames that are each legal but cost the server more than the
client: opening and resetting streams at once (CVE-2023-44487, "rapid reset"), header blocks
of endless CONTINUATION frames (the CVE-2024-27316 class), SETTINGS frames with thousands of
entries, PING or SETTINGS floods from a peer that never reads the ACKs, frames that do
nothing (empty DATA, WINDOW_UPDATE nobody waits for, PRIORITY, unknown types) sent by the
million, and answers queued for a peer that never opens its window. nghttp2, Go's net/http2
and gRPC C-core answer them the same way, and so does :mod:`inferd.transport.grpc.http2`:
counters per connection with budgets, and GOAWAY ``ENHANCE_YOUR_CALM`` past them.

A :class:`Budget` is a token bucket: it starts full, refills with time on an injectable
clock and with useful work (a stream that ends normally gives back a reset token; a stream
opened, or a DATA frame sent that the peer will acknowledge with a WINDOW_UPDATE or a
PING, gives back a few "useless frame" tokens), so a busy legitimate connection keeps its
allowance while a flood spends it in milliseconds. The work is a counter the connection
keeps anyway and hands over only when a token is spent, so the calls that do not spend
any (the fast path) pay nothing for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


class Budget:
    """A token bucket: ``burst`` tokens at most, ``rate`` tokens back per second and
    ``per_work`` back per unit of useful work.

    Args:
        burst: tokens at the start and at most.
        rate: tokens given back per second of ``clock``.
        per_work: tokens given back per unit of the ``work`` counter passed to :meth:`spend`.
        clock: seconds, monotonic (``time.monotonic`` unless a test injects its own).
    """

    __slots__ = ("_burst", "_clock", "_per_work", "_rate", "_stamp", "_work", "tokens")

    def __init__(self, burst: int, rate: float, per_work: float, clock: Clock) -> None:
        self._burst, self._rate, self._per_work, self._clock = float(burst), rate, per_work, clock
        self.tokens = float(burst)
        self._stamp = clock()
        self._work = 0

    def spend(self, work: int) -> bool:
        """Take one token; False when the budget is spent (the caller ends the connection).

        Args:
            work: the useful work done so far (a counter that only grows).
        """
        if self.tokens < 1.0:
            now = self._clock()
            earned = (now - self._stamp) * self._rate + (work - self._work) * self._per_work
            self.tokens = min(self._burst, self.tokens + earned)
            self._stamp, self._work = now, work
            if self.tokens < 1.0:
                return False
        self.tokens -= 1.0
        return True


@dataclass(frozen=True, slots=True)
class Http2Limits:
    """What one HTTP/2 connection allows its peer; defaults follow nghttp2 where it has one.

    Attributes:
        max_concurrent_streams: streams open at once (advertised; more are refused).
        window: the receive window we advertise, per stream and for the connection.
        max_frame_size: the largest frame payload accepted.
        max_header_list_size: the largest decoded header list accepted.
        handshake_timeout_s: a peer that has not sent the preface and its first SETTINGS
            by then is dropped.
        max_continuations: CONTINUATION frames in one header block (nghttp2: 8; gRPC
            clients split a block only past 16 KiB, so 32 frames is 512 KiB at least).
        max_settings: entries in one SETTINGS frame (nghttp2: 32).
        reset_burst, reset_rate: streams the peer may reset or have refused (rapid reset):
            ``reset_burst`` at once, ``reset_rate`` more per second, ``reset_refund`` more
            per stream that ended normally.
        useless_burst, useless_rate: frames that do no work (empty DATA, PRIORITY, unknown
            types, WINDOW_UPDATE that unblocks nothing, PING, SETTINGS, RST_STREAM of a
            closed stream): ``useless_burst`` at once, ``useless_rate`` more per second,
            ``useless_refund`` more per stream opened and per DATA frame sent (full, or
            the end of an answer: a long bidirectional stream is acknowledged frame by
            frame, while a window opened a byte at a time earns nothing).
        max_unsent_acks: PING and SETTINGS ACKs queued while the peer is not reading
            (nghttp2 and Go: 1,000 and 10,000 queued control frames).
        max_pending_bytes: answer bytes held for a peer whose flow-control window is shut
            or that does not read, over all streams of the connection.
        clock: seconds, monotonic; tests inject their own.
    """

    max_concurrent_streams: int = 1000
    window: int = 1 << 24
    max_frame_size: int = 1 << 18
    max_header_list_size: int = 1 << 16
    handshake_timeout_s: float = 5.0
    max_continuations: int = 32
    max_settings: int = 32
    reset_burst: int = 1000
    reset_rate: float = 100.0
    reset_refund: float = 1.0
    useless_burst: int = 1000
    useless_rate: float = 100.0
    useless_refund: float = 4.0
    max_unsent_acks: int = 1000
    max_pending_bytes: int = 80 * 1024 * 1024
    clock: Clock = field(default=time.monotonic, compare=False)
