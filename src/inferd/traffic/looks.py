"""Always-valid p-values carried across looks at an experiment's results.

The mixture SPRT's guarantee (``inferd.stats.sequential``) is about the whole sequence of
looks: P(p_n <= alpha at ANY look n) <= alpha under "no difference". The p-value sequence it
licenses is therefore the running minimum, p_n = min(p_{n-1}, 1 / Lambda_n): once the
evidence crossed 1 / alpha, the result stays significant, and a later look never reports a
higher p-value than an earlier one. Each look at ``GET /v1/experiments/{id}/results`` is a
look; the minimum of every (metric, variant) comparison is kept in the registry
(``experiment_sequential``), so it survives restarts and is shared by every replica.

:func:`carry` is pure (it edits one results document); :class:`LookStore` keeps the minima.
Two replicas answering looks at once both write ``min(stored, theirs)``, so the stored value
is the minimum over every look whatever the order.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError

from inferd.registry import Registry
from inferd.registry.schema import experiment_sequential

S = experiment_sequential
Key = tuple[str, str]  # (metric, variant)


def carry(results: dict[str, Any], previous: Mapping[Key, float], alpha: float) -> dict[Key, float]:
    """Replace each comparison's sequential p-value with its running minimum.

    Each comparison of ``results["metrics"]`` gets ``p_value_sequential_look`` (this look's
    value, None when there is too little data) and ``p_value_sequential`` (the minimum over
    this look and ``previous``), and ``significant_sequential`` says whether that minimum is
    below ``alpha``. A comparison without data this look keeps the minimum it had.

    Args:
        results: a document from :func:`inferd.traffic.results.compute`; edited in place.
        previous: the running minima of earlier looks.
        alpha: the experiment's significance level.

    Returns:
        The running minima after this look (for :meth:`LookStore.save`).
    """
    minima: dict[Key, float] = {}
    for metric, doc in results["metrics"].items():
        for comparison in doc["comparisons"]:
            key = (metric, comparison["variant"])
            look = comparison.get("p_value_sequential")
            candidates = [p for p in (look, previous.get(key)) if p is not None]
            running = min(candidates) if candidates else None
            comparison["p_value_sequential_look"] = look
            comparison["p_value_sequential"] = running
            comparison["significant_sequential"] = running is not None and running < alpha
            if running is not None:
                minima[key] = running
    return minima


class LookStore:
    """The running minima in the registry database.

    Args:
        registry: the database holding ``experiment_sequential`` (migration 16).
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def running(self, exp_id: str) -> dict[Key, float]:
        """(metric, variant) -> the smallest sequential p-value any look reported so far."""
        stmt = select(S.c.metric, S.c.variant, S.c.p_value).where(S.c.experiment_id == exp_id)
        with self.registry.connection() as conn:
            return {(m, v): float(p) for m, v, p in conn.execute(stmt)}

    def save(self, exp_id: str, minima: Mapping[Key, float], now: datetime) -> None:
        """Lower each stored minimum to ``minima``'s value where that is smaller (blocking)."""
        if not minima:
            return
        try:
            self._save(exp_id, minima, now)
        except IntegrityError:  # another look inserted a first row meanwhile: lower it
            self._save(exp_id, minima, now)

    def _save(self, exp_id: str, minima: Mapping[Key, float], now: datetime) -> None:
        with self.registry.transaction(bump=False) as conn:
            for (metric, variant), p in minima.items():
                key = and_(S.c.experiment_id == exp_id, S.c.metric == metric,
                           S.c.variant == variant)  # fmt: skip
                found = conn.execute(select(S.c.p_value).where(key)).first()
                if found is None:
                    conn.execute(S.insert().values(experiment_id=exp_id, metric=metric,
                                                   variant=variant, p_value=p,
                                                   updated_at=now))  # fmt: skip
                elif p < found.p_value:
                    # Conditional: a concurrent look that stored a smaller value keeps it.
                    conn.execute(
                        update(S).where(key, S.c.p_value > p).values(p_value=p, updated_at=now)
                    )
