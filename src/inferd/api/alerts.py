"""REST endpoint of alerts, under ``/v1/alerts``.

GET /v1/alerts[?limit=100&rule=R]   active alerts (pending, firing), history, the rules

Alerts span every model, so keys scoped to some models are refused; any unscoped key with
the predict role or above may read them (docs/security.md). Alerts are written by the one
evaluator of the deployment (inferd.monitoring.alerts); any process answers from the registry.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from inferd.api._request import query_limit
from inferd.errors import ModelNotFound, require_method
from inferd.monitoring.alerts_config import AlertsConfig
from inferd.monitoring.alerts_store import AlertRow, AlertStore

Reply = tuple[int, Any]


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat()


def alert_out(alert: AlertRow) -> dict[str, Any]:
    """One alert in the API's shape (times as ISO 8601)."""
    out = alert.as_dict()
    for name in ("started_at", "fired_at", "resolved_at", "notified_at"):
        out[name] = _iso(out[name])
    return out


class AlertRoutes:
    """Answers ``GET /v1/alerts``.

    Args:
        store: the alerting tables.
        config: the server's alerts file, or None when it evaluates no rules.
    """

    def __init__(self, store: AlertStore, config: AlertsConfig | None) -> None:
        self.store = store
        self.config = config

    async def handle(self, method: str, parts: list[str], query: dict[str, str]) -> Reply:
        """Answer one request; ``parts`` is the path after ``/v1/alerts``."""
        require_method(method, "GET")
        if parts:
            raise ModelNotFound("/v1/alerts/" + "/".join(parts))
        limit, rule = query_limit(query), query.get("rule")

        def read() -> dict[str, Any]:
            active = [a for a in self.store.active() if rule is None or a.rule == rule]
            history = self.store.history(limit, rule)
            return {"evaluating": self.config is not None, "rules": self._rules(),
                    "active": [alert_out(a) for a in active],
                    "history": [alert_out(a) for a in history]}  # fmt: skip

        return 200, await asyncio.to_thread(read)

    def _rules(self) -> list[dict[str, Any]]:
        rules = self.config.rules if self.config is not None else []
        return [{"name": r.name, "kind": r.kind, "severity": r.severity, "threshold": r.threshold,
                 "window_s": r.window, "for_s": r.for_s} for r in rules]  # fmt: skip
