"""In-process drift events, for alerting and anything else that wants to react to a check.

    DriftEvents.subscribe(callback) -> unsubscribe()
    DriftEvents.publish(DriftEvent)  called by the monitor after every check it runs

Events fire in the process that ran the check (one process per check interval across all
replicas, see :meth:`~inferd.monitoring.drift_store.DriftStore.claim`), so a subscriber sees
each check once per deployment, not once per replica. ``kind`` says what happened:

    checked   every completed check (its full result is in ``result``)
    drift     a version whose previous check was not drifted is drifted now
    resolved  a version whose previous check was drifted is not drifted now

Callbacks run on the event loop, synchronously and in subscription order; they must return
quickly (hand slow work to a task or a thread). A callback that raises is logged and the
others still run: observers never break the monitor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

logger = logging.getLogger(__name__)

Kind = Literal["checked", "drift", "resolved"]


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """One drift event of one model version."""

    kind: Kind
    model: str
    version: int
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def drifted_features(self) -> list[str]:
        """Names of the features that drifted (``output.`` prefix for outputs)."""
        return [
            ("output." if f.get("kind") == "output" else "") + str(f["name"])
            for f in self.result.get("features", [])
            if f.get("drifted")
        ]


Subscriber = Callable[[DriftEvent], None]


class DriftEvents:
    """A tiny publish/subscribe hub."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` with every event from now on; returns the unsubscribe function."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, event: DriftEvent) -> None:
        """Deliver one event to every subscriber; failures are logged, never raised."""
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                logger.exception("drift event subscriber %r failed on %s", callback, event.kind)
