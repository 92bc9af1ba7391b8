"""Alerts in the registry database: instances and history, signals, the notification outbox.

    alerts               one row per alert instance: pending -> firing -> resolved
                         (a pending one whose condition clears is deleted: it never fired)
    alert_signals        events reported by any process (drift, rollbacks), consumed once by
                         the evaluator that holds the ``alerts`` lease
    alert_notifications  webhook deliveries: pending (with attempts and the next try), sent,
                         or failed after the receiver's last attempt

Every call blocks; the evaluator runs them in a thread. Times are epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, desc, select, update

from inferd.registry import Registry
from inferd.registry.schema import alert_notifications, alert_signals, alerts, jobs

ACTIVE = ("pending", "firing")


@dataclass
class AlertRow:
    """One alert instance (see the module docstring for its states)."""

    id: int
    fingerprint: str
    rule: str
    kind: str
    severity: str
    state: str
    labels: dict[str, str]
    summary: str
    value: float | None
    started_at: float
    fired_at: float | None
    resolved_at: float | None
    notified_at: float | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``GET /v1/alerts``."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Signal:
    """An event reported by some process: ``key`` names what it is about (model@version)."""

    id: int
    kind: str
    key: str
    active: bool
    labels: dict[str, str]
    detail: dict[str, Any]
    at: float


@dataclass
class Notification:
    """One delivery to one receiver (a group of alerts)."""

    id: int
    receiver: str
    payload: dict[str, Any]
    attempts: int


def _alert(row: Any) -> AlertRow:
    return AlertRow(
        row.id, row.fingerprint, row.rule, row.kind, row.severity, row.state, dict(row.labels),
        row.summary, row.value, row.started_at, row.fired_at, row.resolved_at, row.notified_at,
    )  # fmt: skip


class AlertStore:
    """Reads and writes the alerting tables.

    Args:
        registry: the registry database (migration 15 made the tables).
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def active(self) -> list[AlertRow]:
        """Pending and firing alerts, oldest first."""
        with self.registry.connection() as conn:
            stmt = select(alerts).where(alerts.c.state.in_(ACTIVE)).order_by(alerts.c.id)
            return [_alert(r) for r in conn.execute(stmt)]

    def history(self, limit: int = 100, rule: str | None = None) -> list[AlertRow]:
        """Alerts that fired, newest first (firing and resolved), at most ``limit``."""
        with self.registry.connection() as conn:
            stmt = select(alerts).where(alerts.c.state != "pending")
            if rule is not None:
                stmt = stmt.where(alerts.c.rule == rule)
            stmt = stmt.order_by(desc(alerts.c.id)).limit(limit)
            return [_alert(r) for r in conn.execute(stmt)]

    def open(self, alert: dict[str, Any], now: float) -> int:
        """Insert a new instance (pending or firing); returns its id."""
        with self.registry.transaction(bump=False) as conn:
            result = conn.execute(alerts.insert().values(**alert, updated_at=now))
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def change(self, alert_id: int, now: float, **values: Any) -> None:
        """Update one instance (state, times, value, notified_at)."""
        with self.registry.transaction(bump=False) as conn:
            conn.execute(
                update(alerts).where(alerts.c.id == alert_id).values(**values, updated_at=now)
            )

    def drop(self, alert_id: int) -> None:
        """Delete a pending instance whose condition cleared before it fired."""
        with self.registry.transaction(bump=False) as conn:
            conn.execute(delete(alerts).where(alerts.c.id == alert_id, alerts.c.state == "pending"))

    def known(self, fingerprints: list[str]) -> set[str]:
        """Which of these fingerprints have an instance (one alert per failed job)."""
        if not fingerprints:
            return set()
        with self.registry.connection() as conn:
            stmt = select(alerts.c.fingerprint).where(alerts.c.fingerprint.in_(fingerprints))
            return {str(r.fingerprint) for r in conn.execute(stmt)}

    # -- signals -----------------------------------------------------------------------------

    def signal(self, rows: list[dict[str, Any]]) -> None:
        """Record events from this process (any process may call it)."""
        if rows:
            with self.registry.transaction(bump=False) as conn:
                conn.execute(alert_signals.insert(), [{**r, "consumed": False} for r in rows])

    def take_signals(self) -> list[Signal]:
        """The unconsumed signals, oldest first, marked consumed in the same transaction."""
        with self.registry.transaction(bump=False) as conn:
            stmt = select(alert_signals).where(alert_signals.c.consumed.is_(False))
            rows = list(conn.execute(stmt.order_by(alert_signals.c.id)))
            if rows:
                ids = [r.id for r in rows]
                conn.execute(update(alert_signals).where(alert_signals.c.id.in_(ids))
                             .values(consumed=True))  # fmt: skip
        return [Signal(r.id, r.kind, r.key, bool(r.active), dict(r.labels), dict(r.detail), r.at)
                for r in rows]  # fmt: skip

    def failed_jobs(self, since: float, limit: int = 100) -> list[dict[str, Any]]:
        """Batch jobs that failed since ``since`` (epoch seconds), newest first (id, model,
        version, error)."""
        after = datetime.fromtimestamp(since, UTC)
        with self.registry.connection() as conn:
            stmt = (select(jobs.c.id, jobs.c.model, jobs.c.version, jobs.c.error)
                    .where(jobs.c.state == "failed", jobs.c.finished_at >= after)
                    .order_by(desc(jobs.c.finished_at)).limit(limit))  # fmt: skip
            return [dict(r._mapping) for r in conn.execute(stmt)]

    # -- notifications -----------------------------------------------------------------------

    def enqueue(self, receiver: str, group_key: str, status: str, payload: dict[str, Any],
                now: float) -> None:  # fmt: skip
        """Add a notification, due at once."""
        with self.registry.transaction(bump=False) as conn:
            conn.execute(alert_notifications.insert().values(
                receiver=receiver, group_key=group_key, status=status, payload=payload,
                state="pending", attempts=0, next_at=now, last_error="", created_at=now,
            ))  # fmt: skip

    def due(self, now: float) -> list[Notification]:
        """Pending notifications whose next try is due, oldest first."""
        with self.registry.connection() as conn:
            stmt = (select(alert_notifications)
                    .where(alert_notifications.c.state == "pending",
                           alert_notifications.c.next_at <= now)
                    .order_by(alert_notifications.c.id))  # fmt: skip
            return [Notification(r.id, r.receiver, dict(r.payload), r.attempts)
                    for r in conn.execute(stmt)]  # fmt: skip

    def delivered(self, note_id: int, state: str, attempts: int, next_at: float,
                  error: str = "") -> None:  # fmt: skip
        """Record a try: ``sent``, ``failed`` (no tries left) or ``pending`` (retry later)."""
        with self.registry.transaction(bump=False) as conn:
            conn.execute(update(alert_notifications)
                         .where(alert_notifications.c.id == note_id)
                         .values(state=state, attempts=attempts, next_at=next_at,
                                 last_error=error[:2000]))  # fmt: skip

    def prune(self, before: float) -> None:
        """Delete consumed signals and finished notifications older than ``before`` (the
        alerts themselves are the history and stay)."""
        with self.registry.transaction(bump=False) as conn:
            conn.execute(delete(alert_signals).where(alert_signals.c.consumed.is_(True),
                                                     alert_signals.c.at < before))  # fmt: skip
            conn.execute(delete(alert_notifications).where(
                alert_notifications.c.state != "pending", alert_notifications.c.created_at < before,
            ))  # fmt: skip

    def notifications(self, limit: int = 100) -> list[dict[str, Any]]:
        """Recent notifications, newest first (for tests and the status page)."""
        with self.registry.connection() as conn:
            stmt = select(alert_notifications).order_by(desc(alert_notifications.c.id))
            return [dict(r._mapping) for r in conn.execute(stmt.limit(limit))]
