"""In-process events: one small publish/subscribe bus for whatever reports a change.

    EventBus[E]
      ├─ subscribe(callback) -> unsubscribe()
      ├─ publish(event)        every subscriber, in subscription order
      └─ recent                the last ``keep`` events, none by default (tests, debugging)

    TrafficEvent   RolloutService.events after each rollout change made in this process
                   (``rollout.started``, ``.advanced``, ``.paused``, ``.resumed``,
                   ``.aborted``, ``.completed``, ``.promotion_refused``, ``.rolled_back``)
    DriftEvent     DriftMonitor.events after each check it runs: ``checked`` (every one),
                   ``drift`` (newly drifted), ``resolved`` (no longer drifted)

Each publisher owns its bus; the app wires subscribers (alerting, rollout metrics) to them.
The module sits at the package root so that ``traffic`` and ``monitoring``, which must not
import each other, share the types.

Events are in-process: one fires in the process that did the work (a rollback decided by
the leader, a drift check claimed by one replica), so a subscriber sees each once per
deployment. Callbacks run synchronously on the publisher's thread (the event loop) and must
return quickly. A callback that raises is logged and the others still run: observers never
break the publisher.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

logger = logging.getLogger(__name__)

DriftKind = Literal["checked", "drift", "resolved"]


class Event(Protocol):
    """What the bus needs of an event: a kind to name it by in logs."""

    @property
    def kind(self) -> str: ...


E = TypeVar("E", bound=Event)


@dataclass(frozen=True, slots=True)
class TrafficEvent:
    """One rollout change: its kind, the rollout and model, when (epoch seconds), details."""

    kind: str
    rollout: str
    model: str
    at: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """One drift event of one model version; ``result`` is the check's full result."""

    kind: DriftKind
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


class EventBus(Generic[E]):
    """Fan-out of events to subscribers, keeping the most recent ones.

    Args:
        keep: how many of the latest events :attr:`recent` holds (an event can carry a
            whole drift result, so a bus keeps none unless asked).

    Example:
        >>> bus: EventBus[TrafficEvent] = EventBus()
        >>> unsubscribe = bus.subscribe(print)
    """

    def __init__(self, keep: int = 0) -> None:
        self.recent: deque[E] = deque(maxlen=keep)
        # A key per subscription, so that unsubscribing twice, or a callback subscribed
        # twice, removes exactly the one subscription it was returned for.
        self._subscribers: dict[int, Callable[[E], object]] = {}
        self._keys = itertools.count()

    def subscribe(self, callback: Callable[[E], object]) -> Callable[[], None]:
        """Call ``callback`` with every event from now on (what it returns is ignored).

        Returns:
            The unsubscribe function; calling it again does nothing.
        """
        key = next(self._keys)
        self._subscribers[key] = callback

        def unsubscribe() -> None:
            self._subscribers.pop(key, None)

        return unsubscribe

    def publish(self, event: E) -> None:
        """Record ``event`` and hand it to every subscriber; failures are logged, never
        raised."""
        self.recent.append(event)
        for callback in list(self._subscribers.values()):  # a callback may (un)subscribe
            try:
                callback(event)
            except Exception:
                logger.exception(
                    "%s subscriber %r failed on %s", type(event).__name__, callback, event.kind
                )
