"""REST endpoint of the per-model traffic summary, under ``/v1/models/{m}/metrics``.

GET /v1/models/{m}/metrics[?minutes=5]   request rate, p50/p95/p99, error rate, per version

For people without Prometheus; the numbers come from the same counters and histograms as
``/metrics`` (inferd.monitoring.window says how, across ``--workers N``). A predict key whose
scope has the model may read it, like the model's metadata.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from inferd.errors import InvalidInput, require_method
from inferd.monitoring.window import WindowSummary

Reply = tuple[int, Any]
DEFAULT_MINUTES = 5.0


def query_minutes(query: dict[str, str], most: int) -> float:
    """``?minutes=``: a number above 0 and at most ``most``; 5 when absent."""
    text = query.get("minutes")
    if text is None:
        return DEFAULT_MINUTES
    expected = f"a number of minutes above 0 and at most {most}"
    try:
        minutes = float(text)
    except ValueError:
        raise InvalidInput("minutes", expected, repr(text)[:40]) from None
    if not 0 < minutes <= most:  # NaN fails this too
        raise InvalidInput("minutes", expected, repr(text)[:40])
    return minutes


class MetricRoutes:
    """Answers ``GET /v1/models/{m}/metrics``.

    Args:
        window: the process's snapshot ring (``Metrics.window``).
        check_model: raises ModelNotFound for a model the registry does not know (blocking).
    """

    def __init__(self, window: WindowSummary, check_model: Callable[[str], object]) -> None:
        self.window = window
        self.check_model = check_model

    async def handle(self, method: str, name: str, query: dict[str, str]) -> Reply:
        """The summary of model ``name``; reading several workers' files runs in a thread."""
        require_method(method, "GET")
        minutes = query_minutes(query, self.window.max_minutes)

        def answer() -> dict[str, Any]:
            self.check_model(name)
            return self.window.summary(name, minutes)

        return 200, await asyncio.to_thread(answer)
