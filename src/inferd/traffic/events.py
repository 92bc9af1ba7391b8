"""An in-process event hook for traffic changes (rollouts today), for alerting to route.

The rollout service emits a :class:`TrafficEvent` after each change it makes in this process
(``rollout.started``, ``rollout.advanced``, ``rollout.rolled_back``, ``rollout.completed``,
``rollout.promotion_refused``, ``rollout.paused``, ``rollout.resumed``, ``rollout.aborted``).
A subscriber is a plain callable; its failures are logged, never raised into the controller.
The bus also keeps the last :data:`KEEP` events, for tests and the status page.

Events are in-process: a rollback decided by the leader is emitted in the leader's process.
Every change is also in the rollout's history and the audit log, which all processes see.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

KEEP = 1000


@dataclass(frozen=True, slots=True)
class TrafficEvent:
    """One change: its kind, the rollout and model, when (epoch seconds) and the details."""

    kind: str
    rollout: str
    model: str
    at: float
    detail: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[TrafficEvent], None]


class EventBus:
    """Fan-out of :class:`TrafficEvent` to subscribers, keeping the most recent ones."""

    def __init__(self, keep: int = KEEP) -> None:
        self.recent: deque[TrafficEvent] = deque(maxlen=keep)
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` with each event from now on; returns the unsubscribe call."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def emit(self, event: TrafficEvent) -> None:
        """Record ``event`` and hand it to every subscriber."""
        self.recent.append(event)
        level = logging.WARNING if event.kind == "rollout.rolled_back" else logging.INFO
        logger.log(level, "%s %s (%s) %s", event.kind, event.rollout, event.model, event.detail)
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                logger.exception("traffic event subscriber failed on %s", event.kind)
