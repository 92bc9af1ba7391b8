"""How fast a gRPC server takes on new connections: a churn of short-lived connections must not
starve the clients already connected.

Each new connection costs the server an accept, a TLS or HTTP/2 handshake, a first HPACK block
and a close, on the same event loop that answers the connected clients' calls. Two hundred
clients that connect, make one call and leave, again and again, take most of a small server
(the "many connections" case of bench/grpc_attacks.py), and the client that kept its channel,
as gRPC clients are meant to, gets a fraction of its throughput. Envoy (a listener's
``local_ratelimit``), HAProxy (``rate-limit sessions``) and nginx (``limit_conn``) bound it the
same way: new connections are taken at a rate, with a burst, and the ones over it wait.

:class:`ArrivalGate` is that rate: a token bucket on an injectable clock. A connection that
finds a token is read at once; one that does not waits with its reading paused (its bytes stay
in the kernel) and is let in as tokens come back, oldest first. The wait is bounded
(``max_wait_s``, well inside the HTTP/2 handshake timeout): past it a connection is refused
(GOAWAY, as at the connection cap) rather than queued, so the queue and its memory stay small.
Connected clients are never slowed: the gate sees only new connections.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Protocol

Clock = Callable[[], float]
# (delay s, callback) -> a handle with cancel(): the event loop's call_later in a server.
Scheduler = Callable[[float, Callable[[], None]], object]


class Waiting(Protocol):
    """A connection the gate can hold and let in."""

    def let_in(self) -> None:
        """Start reading (its turn came)."""

    @property
    def gone(self) -> bool:
        """Closed while it waited: skip it."""


class ArrivalGate:
    """New connections at ``rate`` per second after a ``burst``, the rest waiting.

    Args:
        rate: connections let in per second once the burst is spent; 0 turns the gate off.
        burst: connections let in at once (the bucket's size).
        max_wait_s: the longest a connection may wait; one that would wait longer is refused.
        clock: seconds, monotonic.
        schedule: runs a callback after a delay (``loop.call_later`` in a server).
    """

    def __init__(
        self, rate: float, burst: int, max_wait_s: float, clock: Clock, schedule: Scheduler
    ) -> None:
        if rate < 0 or burst < 1 or max_wait_s < 0:
            raise ValueError(
                f"expected rate >= 0, burst >= 1, max_wait_s >= 0; got {rate}, {burst}, "
                f"{max_wait_s}"
            )
        self.rate = rate
        self.burst = float(burst)
        self.max_waiting = math.floor(rate * max_wait_s)
        self._clock = clock
        self._schedule = schedule
        self._tokens = float(burst)
        self._stamp = clock()
        self._queue: deque[Waiting] = deque()
        self._timer = False
        self.waited = 0  # connections that had to wait, since start
        self.refused = 0  # connections refused for the rate, since start

    @property
    def waiting(self) -> int:
        """Connections waiting now (some may have closed meanwhile)."""
        return len(self._queue)

    def arrive(self, conn: Waiting) -> bool | None:
        """True: read ``conn`` now. None: it waits (the gate calls ``let_in`` later). False:
        refuse it (the queue is as long as ``max_wait_s`` allows)."""
        if self.rate == 0:
            return True
        self._refill()
        if not self._queue and self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        if len(self._queue) >= self.max_waiting:
            self.refused += 1
            return False
        self._queue.append(conn)
        self.waited += 1
        self._arm()
        return None

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def _arm(self) -> None:
        if not self._timer:
            self._timer = True
            self._schedule(max(1.0 - self._tokens, 0.0) / self.rate, self._release)

    def _release(self) -> None:
        self._timer = False
        self._refill()
        while self._queue and self._tokens >= 1.0:
            conn = self._queue.popleft()
            if conn.gone:
                continue  # left while waiting: its token stays for the next one
            self._tokens -= 1.0
            conn.let_in()
        while self._queue and self._queue[0].gone:
            self._queue.popleft()
        if self._queue:
            self._arm()
