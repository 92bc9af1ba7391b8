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

import math
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

    def shrink(self, factor: float, floor: int) -> None:
        """Start with ``factor`` of the tokens, but at least ``floor`` (a penalised peer)."""
        self.tokens = min(self.tokens, max(float(floor), self.tokens * factor))


# Strikes kept at most: 0.5 ** 8 of a budget is below any useful floor already, and a cap
# bounds how long an address stays penalised after its attack stops (8 half-lives at most).
MAX_STRIKES = 8.0


class Penalties:
    """Abuse remembered per peer address, so that reconnecting does not buy a fresh budget.

    A connection ended for abuse gives its address a strike; strikes decay with a half-life
    on ``clock``. A new connection from an address with ``s`` strikes starts its budgets
    with ``0.5 ** s`` of their tokens (at least ``floor``), so an attacker that reconnects
    as soon as it is told GOAWAY gets a few frames per connection instead of a thousand,
    while a connection that is already open (a legitimate client behind the same address)
    keeps its own budget, and a well-behaved new one earns tokens back with its work as
    usual. At most ``max_addresses`` are remembered (the least recently struck go first),
    with at most :data:`MAX_STRIKES` each.

    Args:
        half_life_s: seconds for a strike to count half.
        max_addresses: addresses remembered at most.
        floor: tokens a penalised connection's budgets start with at least.
        clock: seconds, monotonic.
    """

    def __init__(self, half_life_s: float, max_addresses: int, floor: int, clock: Clock) -> None:
        self.half_life_s, self.max_addresses, self.floor = half_life_s, max_addresses, floor
        self._clock = clock
        self._strikes: dict[str, tuple[float, float]] = {}  # address -> (strikes, when)

    def strikes(self, address: str) -> float:
        """The address's strikes now, decayed."""
        entry = self._strikes.get(address)
        if entry is None:
            return 0.0
        score, when = entry
        return score * math.pow(0.5, (self._clock() - when) / self.half_life_s)

    def strike(self, address: str) -> None:
        """A connection from ``address`` was ended for abuse."""
        score = min(self.strikes(address) + 1.0, MAX_STRIKES)
        self._strikes.pop(address, None)  # re-inserted last: the most recently struck
        self._strikes[address] = (score, self._clock())
        while len(self._strikes) > self.max_addresses:
            del self._strikes[next(iter(self._strikes))]

    def allowance(self, address: str) -> float:
        """The share of its budgets a new connection from ``address`` starts with."""
        return 0.5 ** self.strikes(address) if address in self._strikes else 1.0


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
        strike_half_life_s, max_penalised, penalised_floor: :class:`Penalties` (a server
            that keeps them: the gRPC one), against attackers that reconnect.
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
    strike_half_life_s: float = 30.0
    max_penalised: int = 65_536
    penalised_floor: int = 16
    clock: Clock = field(default=time.monotonic, compare=False)
