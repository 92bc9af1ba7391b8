"""Shadow traffic in the registry database: each model's target and the agreement rows.

Setting or removing a target runs in one transaction with its audit entry and bumps the
registry revision, so every process and replica mirrors alike within one poll. Agreement is
written as each process's cumulative sums per version pair, without a bump (it changes no
routing), and merged exactly at read time: a process restart starts a new source row, so
nothing is counted twice and nothing flushed is lost, whatever ``--workers`` says.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, select, update

from inferd.errors import InferdError
from inferd.registry import Registry
from inferd.registry.schema import shadow_aggregates, shadows
from inferd.traffic.shadow_config import ShadowConfig, ShadowSpec

S, SA = shadows, shadow_aggregates
Pair = tuple[str, str, str]  # model, primary version, shadow version


class ShadowNotFound(InferdError):
    """The model has no shadow target."""

    http_status = 404
    grpc_code = "NOT_FOUND"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"model '{model}' has no shadow traffic configured; PUT a "
            '{"version", "fraction"} body to its shadow endpoint to set one'
        )


class ShadowStore:
    """The shadow tables, over the registry's connections and transactions.

    Args:
        registry: the registry whose database holds them.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def revision(self) -> int:
        """The registry revision (moves with every target change)."""
        return self.registry.revision()

    def configs(self) -> list[ShadowConfig]:
        """Every model's shadow target."""
        with self.registry.connection() as conn:
            return [_config(row) for row in conn.execute(select(S).order_by(S.c.model))]

    def get(self, model: str) -> ShadowConfig | None:
        with self.registry.connection() as conn:
            row = conn.execute(select(S).where(S.c.model == model)).first()
            return None if row is None else _config(row)

    def put(self, model: str, spec: ShadowSpec, actor: str, now: datetime) -> ShadowConfig:
        """Set (or replace) ``model``'s shadow target, audited.

        Raises:
            ModelNotFound: the model or the version is not registered.
        """
        self.registry.get_version(model, spec.version)  # 404 naming what exists
        values = {"version": spec.version, "fraction": spec.fraction,
                  "queue_size": spec.queue_size, "updated_by": actor or "anonymous",
                  "updated_at": now}  # fmt: skip
        with self.registry.transaction() as conn:
            before = conn.execute(select(S).where(S.c.model == model)).first()
            if before is None:
                conn.execute(S.insert().values(model=model, **values))
            else:
                conn.execute(update(S).where(S.c.model == model).values(**values))
            after = f"version {spec.version}, fraction {spec.fraction:g}"
            detail = {"queue_size": spec.queue_size}
            self.registry.record_audit(
                conn, actor, "set_shadow", model, spec.version, _describe(before), after, detail
            )
            return _config(conn.execute(select(S).where(S.c.model == model)).one())

    def delete(self, model: str, actor: str) -> ShadowConfig:
        """Remove ``model``'s shadow target (its agreement rows stay readable).

        Raises:
            ShadowNotFound: the model has no shadow target.
        """
        with self.registry.transaction() as conn:
            row = conn.execute(select(S).where(S.c.model == model)).first()
            if row is None:
                raise ShadowNotFound(model)
            conn.execute(delete(S).where(S.c.model == model))
            self.registry.record_audit(
                conn, actor, "remove_shadow", model, row.version, _describe(row), None
            )
            return _config(row)

    def save_aggregates(self, source: str, data: dict[Pair, dict[str, Any]], now: datetime) -> None:
        """Upsert one process's cumulative agreement per pair; no revision bump."""
        with self.registry.transaction(bump=False) as conn:
            for (model, primary, shadow), payload in data.items():
                key = and_(SA.c.model == model, SA.c.primary_version == primary,
                           SA.c.shadow_version == shadow, SA.c.source == source)  # fmt: skip
                done = conn.execute(update(SA).where(key).values(data=payload, updated_at=now))
                if not done.rowcount:  # a process writes only its own rows: no insert race
                    conn.execute(SA.insert().values(
                        model=model, primary_version=primary, shadow_version=shadow,
                        source=source, data=payload, updated_at=now,
                    ))  # fmt: skip

    def aggregates(self, model: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """(primary version, shadow version) -> every process's agreement data."""
        stmt = select(SA.c.primary_version, SA.c.shadow_version, SA.c.data).where(
            SA.c.model == model
        )
        found: dict[tuple[str, str], list[dict[str, Any]]] = {}
        with self.registry.connection() as conn:
            for primary, shadow, data in conn.execute(stmt):
                found.setdefault((primary, shadow), []).append(data)
        return found


def _describe(row: Any) -> str | None:
    return None if row is None else f"version {row.version}, fraction {row.fraction:g}"


def _config(row: Any) -> ShadowConfig:
    at = row.updated_at
    if at is not None and at.tzinfo is None:  # SQLite hands back naive UTC datetimes
        at = at.replace(tzinfo=UTC)
    return ShadowConfig(row.model, int(row.version), float(row.fraction), int(row.queue_size),
                        row.updated_by, at)  # fmt: skip
