"""The drift tables in the registry database (migration 14).

    drift_settings  model -> DriftSettings (absent: drift off for the model unless a version
                    has a reference profile, then the defaults)
    drift_profiles  (model, version) -> reference profile, from a dataset or from traffic
    drift_samples   one row per flush of one process: the rows it sampled since its last flush
    drift_results   (model, version) -> the latest check, and who may run the next one

Only settings and profile changes bump the registry revision (they change what processes
sample); sample batches and results do not, or every replica would reload every few seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.exc import IntegrityError

from inferd.monitoring.drift_check import DriftSettings
from inferd.monitoring.drift_profile import Profile
from inferd.registry import Registry
from inferd.registry.schema import drift_profiles, drift_results, drift_samples, drift_settings

ST, PR, SA, RE = drift_settings, drift_profiles, drift_samples, drift_results
Batch = tuple[int, dict[str, list[Any]]]  # (requests sampled, column-wise rows kept)


class DriftStore:
    """Reads and writes the drift tables through the registry's connections.

    Args:
        registry: the registry whose database holds the drift tables.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    # -- settings and profiles -----------------------------------------------------------------

    def settings(self) -> dict[str, DriftSettings]:
        """Every model's stored settings."""
        with self.registry.connection() as conn:
            rows = conn.execute(select(ST.c.model, ST.c.settings)).all()
        return {r.model: DriftSettings.model_validate(r.settings) for r in rows}

    def put_settings(self, model: str, settings: DriftSettings) -> None:
        """Store a model's settings (processes pick them up at their next refresh)."""
        now = datetime.now(UTC)
        payload = settings.model_dump(mode="json")
        with self.registry.transaction() as conn:
            done = conn.execute(
                update(ST).where(ST.c.model == model).values(settings=payload, updated_at=now)
            )
            if not done.rowcount:
                conn.execute(ST.insert().values(model=model, settings=payload, updated_at=now))

    def profiled(self) -> set[tuple[str, int]]:
        """(model, version) pairs that have a reference profile."""
        with self.registry.connection() as conn:
            return {(r.model, r.version) for r in conn.execute(select(PR.c.model, PR.c.version))}

    def profile(self, model: str, version: int) -> tuple[Profile, str, datetime] | None:
        """The profile, its source (dataset or traffic) and when it was made; None if none."""
        with self.registry.connection() as conn:
            row = conn.execute(
                select(PR).where(PR.c.model == model, PR.c.version == version)
            ).first()
        if row is None:
            return None
        return Profile.from_dict(row.profile), row.source, _utc(row.created_at)

    def put_profile(
        self, model: str, version: int, profile: Profile, source: str,
        at: datetime | None = None,
    ) -> None:  # fmt: skip
        """Store (or replace) a version's reference, made ``at`` (now by default); its
        earlier results are dropped, and its windows start then."""
        now = at or datetime.now(UTC)
        data = profile.to_dict()
        key = and_(PR.c.model == model, PR.c.version == version)
        with self.registry.transaction() as conn:
            done = conn.execute(update(PR).where(key).values(profile=data, source=source,
                                                             created_at=now))  # fmt: skip
            if not done.rowcount:
                conn.execute(PR.insert().values(model=model, version=version, profile=data,
                                                source=source, created_at=now))  # fmt: skip
            conn.execute(delete(RE).where(RE.c.model == model, RE.c.version == version))

    # -- sampled windows -------------------------------------------------------------------------

    def add_batches(
        self, source: str, batches: Mapping[tuple[str, int], Batch], at: datetime
    ) -> None:
        """Append one flush of one process: a batch per (model, version)."""
        rows = [
            {"model": m, "version": v, "source": source, "at": at, "seen": seen,
             "rows": max((len(c) for c in data.values()), default=0), "data": data}
            for (m, v), (seen, data) in batches.items()
        ]  # fmt: skip
        if rows:
            with self.registry.transaction(bump=False) as conn:
                conn.execute(SA.insert(), rows)

    def batches(
        self, model: str, version: int, since: datetime, until: datetime | None = None
    ) -> list[tuple[datetime, int, dict[str, list[Any]]]]:
        """The batches flushed in ``[since, until)``, oldest first: (at, seen, data)."""
        stmt = select(SA.c.at, SA.c.seen, SA.c.data).where(
            SA.c.model == model, SA.c.version == version, SA.c.at >= since
        )
        if until is not None:
            stmt = stmt.where(SA.c.at < until)
        with self.registry.connection() as conn:
            rows = conn.execute(stmt.order_by(SA.c.at, SA.c.id)).all()
        return [(_utc(r.at), r.seen, r.data) for r in rows]

    def sampled_versions(self, models: Sequence[str]) -> set[tuple[str, int]]:
        """(model, version) pairs of ``models`` that have sampled batches."""
        stmt = select(SA.c.model, SA.c.version).where(SA.c.model.in_(list(models))).distinct()
        with self.registry.connection() as conn:
            return {(r.model, r.version) for r in conn.execute(stmt)}

    def prune(self, model: str, version: int, before: datetime) -> int:
        """Delete a version's batches flushed before ``before``; return how many."""
        stmt = delete(SA).where(SA.c.model == model, SA.c.version == version, SA.c.at < before)
        with self.registry.transaction(bump=False) as conn:
            return conn.execute(stmt).rowcount or 0

    # -- results ---------------------------------------------------------------------------------

    def claim(
        self, model: str, version: int, now: float, interval_s: float, lease_s: float
    ) -> bool:
        """Whether this process runs the next check of a version (one process per interval).

        A conditional update is the lock: it succeeds for one process only, on SQLite and on
        PostgreSQL alike; a claim that is never completed expires after ``lease_s``.
        """
        key = and_(RE.c.model == model, RE.c.version == version)
        with self.registry.transaction(bump=False) as conn:
            done = conn.execute(
                update(RE)
                .where(key, RE.c.claimed_until < now, RE.c.checked_at <= now - interval_s)
                .values(claimed_until=now + lease_s)
            )
            if done.rowcount:
                return True
            if conn.execute(select(RE.c.model).where(key)).first() is not None:
                return False
        try:
            with self.registry.transaction(bump=False) as conn:
                conn.execute(RE.insert().values(
                    model=model, version=version, result=None, checked_at=0.0,
                    claimed_until=now + lease_s,
                ))  # fmt: skip
        except IntegrityError:  # another process inserted it first: its claim
            return False
        return True

    def save_result(self, model: str, version: int, result: dict[str, Any], now: float) -> None:
        """Store a check's result and release the claim."""
        key = and_(RE.c.model == model, RE.c.version == version)
        with self.registry.transaction(bump=False) as conn:
            done = conn.execute(
                update(RE).where(key).values(result=result, checked_at=now, claimed_until=0.0)
            )
            if not done.rowcount:
                conn.execute(RE.insert().values(model=model, version=version, result=result,
                                                checked_at=now, claimed_until=0.0))  # fmt: skip

    def results(self, model: str | None = None) -> dict[tuple[str, int], dict[str, Any]]:
        """The latest stored result of every checked version (of one model)."""
        stmt = select(RE.c.model, RE.c.version, RE.c.result)
        if model is not None:
            stmt = stmt.where(RE.c.model == model)
        with self.registry.connection() as conn:  # a claimed, never checked row has none
            rows = conn.execute(stmt).all()
        return {(r.model, r.version): r.result for r in rows if r.result is not None}


def _utc(value: datetime) -> datetime:
    # SQLite returns naive datetimes for timezone-aware columns.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def window_columns(batches: Sequence[tuple[datetime, int, dict[str, list[Any]]]]) -> list[Batch]:
    """The (seen, data) pairs of :meth:`DriftStore.batches`, for ``merge_batches``."""
    return [(seen, data) for _, seen, data in batches]
