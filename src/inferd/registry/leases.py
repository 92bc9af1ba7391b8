"""Leases in the registry database: one holder at a time for controllers that must run once.

A controller (the rollout controller; drift checks and alert evaluation can reuse it) runs in
every worker process of every replica, and each tick first calls :meth:`Lease.acquire`. One
row per lease name holds the owner and an expiry; taking it is a compare-and-set on both
(like a job claim in :mod:`inferd.jobs.store`), so of several processes racing exactly one
wins, and the others act only once the holder stopped renewing and its lease ran out. This
works alike on SQLite and PostgreSQL. Times come from the caller's clock, so tests drive
expiry with a fake one; replicas on real clocks need them within a fraction of the lease.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from inferd.registry import Registry
from inferd.registry.schema import leases

Clock = Callable[[], float]


def lease_owner() -> str:
    """``host:pid:nonce``, unique per process start."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Lease:
    """A named lease held by one process at a time.

    Args:
        registry: the database holding the ``leases`` table.
        name: what the lease is for, e.g. ``rollouts``.
        ttl_s: how long a renewal holds; renew well within it (a third is a good interval).
        owner: this holder's name; unique per process by default.
        clock: seconds since the epoch.
    """

    def __init__(
        self, registry: Registry, name: str, ttl_s: float, *, owner: str | None = None,
        clock: Clock = time.time,
    ) -> None:  # fmt: skip
        if ttl_s <= 0:
            raise ValueError(f"ttl_s: expected a positive number of seconds, got {ttl_s}")
        self.registry = registry
        self.name = name
        self.ttl_s = ttl_s
        self.owner = owner or lease_owner()
        self.clock = clock

    def acquire(self) -> bool:
        """Take or renew the lease; True while this process holds it (blocking)."""
        try:
            return self._acquire(self.clock())
        except IntegrityError:
            return False  # another process inserted the row first

    def _acquire(self, now: float) -> bool:
        with self.registry.transaction(bump=False) as conn:
            row = conn.execute(select(leases).where(leases.c.name == self.name)).first()
            if row is None:
                conn.execute(leases.insert().values(
                    name=self.name, owner=self.owner, expires_at=now + self.ttl_s, acquired_at=now,
                ))  # fmt: skip
                return True
            if row.owner != self.owner and row.expires_at > now:
                return False
            acquired = now if row.owner != self.owner else row.acquired_at
            done = conn.execute(
                update(leases)
                .where(
                    leases.c.name == self.name,
                    leases.c.owner == row.owner,
                    leases.c.expires_at == row.expires_at,
                )
                .values(owner=self.owner, expires_at=now + self.ttl_s, acquired_at=acquired)
            )
            return done.rowcount == 1

    def release(self) -> None:
        """Give the lease up at once (on shutdown), so another process need not wait."""
        with self.registry.transaction(bump=False) as conn:
            conn.execute(
                update(leases)
                .where(leases.c.name == self.name, leases.c.owner == self.owner)
                .values(expires_at=0.0)
            )

    def holder(self) -> tuple[str, float] | None:
        """The current owner and expiry, if anyone ever took the lease."""
        with self.registry.connection() as conn:
            row = conn.execute(select(leases).where(leases.c.name == self.name)).first()
            return None if row is None else (str(row.owner), float(row.expires_at))
