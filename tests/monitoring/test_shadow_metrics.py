"""Shadow metrics counted per group equal the same copies counted one by one."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from inferd.monitoring.shadow_metrics import ShadowMetrics
from inferd.traffic.agreement import Comparison

PAIR = ("m", "2", "1")


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_a_group_of_copies_counts_as_its_copies_one_by_one() -> None:
    grouped, single = CollectorRegistry(), CollectorRegistry()
    by_group, one_by_one = ShadowMetrics(grouped), ShadowMetrics(single)
    each = Comparison(label_rows=2, label_matches=1, values=3, abs_diff_sum=0.5)
    total = Comparison(label_rows=6, label_matches=3, values=9, abs_diff_sum=1.5)
    by_group.answered(PAIR, "compared", total, 0.004, 3)
    by_group.answered(PAIR, "failed", None, 0.25, 2)
    for _ in range(3):
        one_by_one.answered(PAIR, "compared", each, 0.004)
    for _ in range(2):
        one_by_one.answered(PAIR, "failed", None, 0.25)
    got = _samples(grouped)
    assert got == _samples(single)
    labels = (("model", "m"), ("primary", "2"), ("shadow", "1"))
    assert got[("inferd_shadow_latency_seconds_count", labels)] == 5
    compared = tuple(sorted((*labels, ("result", "compared"))))
    assert got[("inferd_shadow_requests_total", compared)] == 3
