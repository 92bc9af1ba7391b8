"""Traffic management: deterministic routing of units to variants (experiments, rollouts)."""

from inferd.traffic.router import BUCKETS, Splitter, allocation, unit_bucket

__all__ = ["BUCKETS", "Splitter", "allocation", "unit_bucket"]
