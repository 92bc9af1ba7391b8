"""Rollouts in the registry database: definitions, state, history and per-step aggregates.

Every state change is one conditional UPDATE (on the state, and on the step where it moves
the canary's share) in one transaction with its audit entry and a revision bump, so of the
controller and an operator acting at once exactly one wins, and every replica's routing
follows within one poll interval. Aggregates are written without a bump, like experiments'.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, select, update

from inferd.errors import Conflict, InferdError
from inferd.registry import Registry
from inferd.registry.schema import rollout_aggregates, rollouts
from inferd.traffic.rollout_spec import RolloutSpec

R, AG = rollouts, rollout_aggregates
ACTIVE = ("pending", "running", "paused")  # the states that may still change
ROUTING = ("running", "paused")  # the states whose canary takes traffic
# History events after which a step's clock no longer runs (pauses and the ends).
_CLOCK_STOPS = frozenset({"paused", "promotion_refused", "rolled_back", "completed", "aborted"})


class RolloutNotFound(InferdError):
    """No rollout has this id."""

    http_status = 404
    grpc_code = "NOT_FOUND"

    def __init__(self, rollout_id: str) -> None:
        super().__init__(
            f"rollout '{rollout_id}' not found; list rollouts with `inferd rollouts list`"
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """A rollout as stored."""

    id: str
    name: str
    model: str
    state: str
    spec: RolloutSpec
    baseline: int
    candidate: int
    step: int
    percents: list[float]
    salt: str
    reason: str = ""
    breach: list[dict[str, Any]] | None = None
    history: tuple[dict[str, Any], ...] = ()
    created_by: str = ""
    created_at: datetime | None = None
    step_started_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def percent(self) -> float:
        """The canary's share now: the step's while it routes, else 0."""
        return self.percents[-1] if self.state in ROUTING and self.percents else 0.0

    def step_active_s(self, now: float) -> float:
        """Seconds the current step has spent running (paused time does not count) at ``now``.

        Worked out from the history, which records every start, pause, resume and step move
        with its time on the service's clock; so it survives restarts and is the same in every
        process. A step that began while paused starts counting when the rollout resumes.
        """
        active, since = 0.0, None  # since: when the current running stretch began
        running = False
        for entry in self.history:
            at, event = datetime.fromisoformat(entry["at"]).timestamp(), entry["event"]
            if event in ("started", "advanced"):  # a new step: its clock starts over
                running = running or event == "started"
                active, since = 0.0, (at if running else None)
            elif event == "resumed":
                running, since = True, at
            elif event in _CLOCK_STOPS:
                if since is not None:
                    active += at - since
                running, since = False, None
        if since is not None:
            active += max(now - since, 0.0)
        return active

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "model": self.model, "state": self.state,
            "spec": self.spec.model_dump(mode="json"), "baseline": self.baseline,
            "candidate": self.candidate, "step": self.step, "percent": self.percent,
            "percent_history": self.percents, "reason": self.reason, "breach": self.breach,
            "history": list(self.history), "created_by": self.created_by,
            "created_at": _iso(self.created_at), "step_started_at": _iso(self.step_started_at),
            "started_at": _iso(self.started_at), "ended_at": _iso(self.ended_at),
            "updated_at": _iso(self.updated_at),
        }  # fmt: skip


class RolloutStore:
    """The rollout tables, over the registry's connections and transactions."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def create(self, spec: RolloutSpec, baseline: int, actor: str, now: datetime) -> RolloutRecord:
        """Store a new rollout as pending; refused while the model has another active one."""
        rollout_id = f"ro-{secrets.token_hex(6)}"
        name = spec.name or f"{spec.model} v{baseline} -> v{spec.candidate}"
        with self.registry.transaction() as conn:
            active = conn.execute(
                select(R.c.id).where(R.c.model == spec.model, R.c.state.in_(ACTIVE))
            ).first()
            if active is not None:
                raise Conflict(f"model '{spec.model}' already has rollout '{active.id}' in "
                               "progress; abort it or let it finish first")  # fmt: skip
            event = {"at": now.isoformat(), "event": "created", "actor": actor or "anonymous"}
            conn.execute(
                R.insert().values(
                    id=rollout_id, name=name, model=spec.model, state="pending",
                    spec=spec.model_dump(mode="json"), baseline=baseline,
                    candidate=spec.candidate, step=0, percents=[], salt=secrets.token_hex(16),
                    reason="", breach=None, history=[event], created_by=actor or "anonymous",
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
            self._log(conn, actor, "create_rollout", spec.model, rollout_id, None, "pending",
                      {"baseline": baseline, "candidate": spec.candidate})  # fmt: skip
            return _record(self._row(conn, rollout_id))

    def get(self, rollout_id: str) -> RolloutRecord:
        """Raises RolloutNotFound (404)."""
        with self.registry.connection() as conn:
            return _record(self._row(conn, rollout_id))

    def find(
        self, model: str | None = None, states: Iterable[str] | None = None
    ) -> list[RolloutRecord]:
        """Rollouts, newest first, optionally of one model or in some states."""
        stmt = select(R).order_by(R.c.created_at.desc(), R.c.id)
        if model is not None:
            stmt = stmt.where(R.c.model == model)
        if states is not None:
            stmt = stmt.where(R.c.state.in_(list(states)))
        with self.registry.connection() as conn:
            return [_record(r) for r in conn.execute(stmt)]

    def transition(
        self, rollout_id: str, allowed: Iterable[str], target: str, actor: str, now: datetime,
        event: dict[str, Any], *, step: int | None = None, expect_step: int | None = None,
        **values: Any,
    ) -> RolloutRecord:  # fmt: skip
        """Move a rollout from one of ``allowed`` states to ``target`` (and to ``step``).

        Args:
            event: the history entry (``at`` and ``actor`` are added).
            step: the step to move to; its percent is appended to the share history.
            expect_step: act only if the rollout is still at this step.

        Raises:
            RolloutNotFound: no such rollout.
            Conflict: another state, or another step (the message names both).
        """
        allowed = list(allowed)
        with self.registry.transaction() as conn:
            row = self._row(conn, rollout_id)
            where = [R.c.id == rollout_id, R.c.state.in_(allowed)]
            if expect_step is not None:
                where.append(R.c.step == expect_step)
            entry = {"at": now.isoformat(), "actor": actor or "anonymous", **event}
            changes: dict[str, Any] = {"state": target, "updated_at": now,
                                       "history": [*row.history, entry], **values}  # fmt: skip
            if step is not None:
                percent = RolloutSpec.model_validate(row.spec).steps[step].percent
                changes.update(step=step, percents=[*row.percents, percent], step_started_at=now)
            if not conn.execute(update(R).where(*where).values(**changes)).rowcount:
                raise Conflict(_refusal(rollout_id, row, allowed, target, expect_step))
            detail = {k: v for k, v in entry.items() if k not in ("at", "actor", "event")}
            self._log(conn, actor, f"{event['event']}_rollout", row.model, rollout_id,
                      row.state, target, detail)  # fmt: skip
            return _record(self._row(conn, rollout_id))

    # -- aggregates ------------------------------------------------------------------------

    def save_aggregates(
        self, rollout_id: str, step: int, source: str, data: dict[str, Any], now: datetime
    ) -> None:
        """Upsert one process's cumulative aggregates of one step (arm -> data)."""
        with self.registry.transaction(bump=False) as conn:
            for arm, payload in data.items():
                key = and_(AG.c.rollout_id == rollout_id, AG.c.step == step, AG.c.arm == arm,
                           AG.c.source == source)  # fmt: skip
                done = conn.execute(update(AG).where(key).values(data=payload, updated_at=now))
                if not done.rowcount:  # one process writes its own rows: no race on insert
                    conn.execute(AG.insert().values(rollout_id=rollout_id, step=step, arm=arm,
                                                    source=source, data=payload,
                                                    updated_at=now))  # fmt: skip

    def aggregates(self, rollout_id: str, step: int) -> dict[str, list[dict[str, Any]]]:
        """Arm -> every process's aggregate data for one step."""
        stmt = select(AG.c.arm, AG.c.data).where(AG.c.rollout_id == rollout_id, AG.c.step == step)
        found: dict[str, list[dict[str, Any]]] = {}
        with self.registry.connection() as conn:
            for arm, data in conn.execute(stmt):
                found.setdefault(arm, []).append(data)
        return found

    # -- internals ---------------------------------------------------------------------------

    def _row(self, conn: Connection, rollout_id: str) -> Row[Any]:
        row = conn.execute(select(R).where(R.c.id == rollout_id)).first()
        if row is None:
            raise RolloutNotFound(rollout_id)
        return row

    def _log(
        self, conn: Connection, actor: str, action: str, model: str, rollout_id: str,
        before: str | None, after: str | None, detail: dict[str, Any],
    ) -> None:  # fmt: skip
        self.registry.record_audit(
            conn, actor, action, model, None, before, after, {"rollout": rollout_id, **detail}
        )


def _refusal(
    rollout_id: str, row: Row[Any], allowed: list[str], target: str, expect_step: int | None
) -> str:
    if row.state in allowed and expect_step is not None:
        return (f"rollout '{rollout_id}' moved to step {row.step} meanwhile (expected step "
                f"{expect_step}); look at it again and retry")  # fmt: skip
    return (f"rollout '{rollout_id}' is {row.state}; it can become {target} only from "
            f"{' or '.join(allowed)}")  # fmt: skip


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes (stored as UTC); PostgreSQL aware ones.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _record(row: Row[Any]) -> RolloutRecord:
    return RolloutRecord(
        id=row.id, name=row.name, model=row.model, state=row.state,
        spec=RolloutSpec.model_validate(row.spec), baseline=row.baseline,
        candidate=row.candidate, step=row.step, percents=[float(p) for p in row.percents],
        salt=row.salt, reason=row.reason or "", breach=row.breach,
        history=tuple(row.history or ()), created_by=row.created_by,
        created_at=_utc(row.created_at), step_started_at=_utc(row.step_started_at),
        started_at=_utc(row.started_at), ended_at=_utc(row.ended_at),
        updated_at=_utc(row.updated_at),
    )  # fmt: skip
