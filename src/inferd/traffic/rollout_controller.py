"""The rollout controller: one leader across worker processes and replicas moves rollouts.

Every server process runs a :class:`RolloutController`; each tick it takes or renews the
``rollouts`` lease in the registry database (:class:`inferd.registry.leases.Lease`) and only
the holder acts: it starts pending rollouts, and for each running or paused one merges the
current step's aggregates that every process flushed, then holds, advances, completes or
rolls back (:func:`inferd.traffic.rollouts.decide`). All state is in the database, so a new
leader (after a restart, or when the old one's lease ran out) carries on where it stopped.

How fast a breach takes effect, at the defaults: tallies reach the database within the
traffic policy's flush (5 s), the leader looks every ``interval_s`` (5 s), and every replica
re-reads routing within its poll interval (1 s) of the change: 11 s at worst, within the 30 s
the issue asks for. A leader that shuts down cleanly releases its lease, so another process
leads at its next tick; one that dies (SIGKILL, a lost node) is replaced only once its lease
(3 intervals, 15 s) runs out: a replica cannot tell a dead holder from a slow one sooner.
"""

from __future__ import annotations

import asyncio
import logging

from inferd.errors import InferdError, RegistryUnavailable
from inferd.registry.leases import Lease
from inferd.registry.outage import OutageLog, poll
from inferd.traffic.rollout_store import ACTIVE
from inferd.traffic.rollouts import Decision, RolloutService

logger = logging.getLogger(__name__)

LEASE_NAME = "rollouts"


class RolloutController:
    """Moves active rollouts while this process holds the lease.

    Args:
        service: the rollout service (its clock is the controller's clock).
        interval_s: seconds between ticks in :meth:`run`.
        lease: the lease to hold; by default ``rollouts`` for three intervals.
    """

    def __init__(
        self, service: RolloutService, interval_s: float = 5.0, lease: Lease | None = None
    ) -> None:
        self.service = service
        self.interval_s = interval_s
        self.lease = lease or Lease(
            service.store.registry, LEASE_NAME, 3 * interval_s, clock=service.clock
        )
        self.leader = False

    async def tick(self) -> dict[str, Decision]:
        """One round: rollout id -> what was decided; empty when another process leads."""
        self.leader = await asyncio.to_thread(self.lease.acquire)
        if not self.leader:
            return {}
        decisions: dict[str, Decision] = {}
        for record in await asyncio.to_thread(self.service.store.find, None, ACTIVE):
            try:
                decisions[record.id] = await self.service.apply(record)
            except RegistryUnavailable:
                raise
            except InferdError as err:  # a refused promotion, a lost race: next tick sees it
                logger.warning("rollout %s: %s", record.id, err.message)
        return decisions

    async def run(self) -> None:
        """Tick every ``interval_s`` until cancelled (then :meth:`close`)."""
        outage = OutageLog(logger, "rollouts not checked")
        await poll(self.tick, self.interval_s, outage, "rollout controller tick failed")

    async def close(self) -> None:
        """Hand the lease back, so another process leads without waiting for it to expire.

        Released even when the last tick did not report leading: a tick cancelled at shutdown
        while its ``acquire`` ran in a thread may have taken the lease after all. The release
        only touches this owner's row, so a process that never led changes nothing.
        """
        try:
            await asyncio.to_thread(self.lease.release)
        except Exception:
            logger.exception("rollout lease not released; it expires by itself")
        self.leader = False
