"""Prometheus series of drift checks: ``inferd_drift_*``, labelled by model, version, feature.

Every process sets them from the results stored in the registry (the monitor refreshes them
each tick), so all workers and replicas export the same values; with ``--workers N`` the
``livemostrecent`` mode makes a scrape show the latest value any live worker wrote. Output
features carry an ``output.`` prefix in the ``feature`` label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from prometheus_client import CollectorRegistry, Gauge

_MODE: Final[Literal["livemostrecent"]] = "livemostrecent"
_VERSION = ["model", "version"]
_FEATURE = ["model", "version", "feature"]


class DriftMetrics:
    """The drift gauges, registered on the server's metrics registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.detected = Gauge(
            "inferd_drift_detected", "1 when the latest drift check found drift, else 0.",
            _VERSION, registry=r, multiprocess_mode=_MODE,
        )  # fmt: skip
        self.samples = Gauge(
            "inferd_drift_window_samples", "Sampled rows the latest drift check tested.",
            _VERSION, registry=r, multiprocess_mode=_MODE,
        )  # fmt: skip
        self.checked = Gauge(
            "inferd_drift_last_check_timestamp_seconds", "When the latest drift check ran.",
            _VERSION, registry=r, multiprocess_mode=_MODE,
        )  # fmt: skip
        self.mmd_p = Gauge(
            "inferd_drift_mmd_p_value", "Corrected p-value of the multivariate (MMD) test.",
            _VERSION, registry=r, multiprocess_mode=_MODE,
        )  # fmt: skip
        self.p_value = Gauge(
            "inferd_drift_feature_p_value", "Corrected p-value of a feature's drift test.",
            _FEATURE, registry=r, multiprocess_mode=_MODE,
        )  # fmt: skip
        self.psi = Gauge(
            "inferd_drift_feature_psi", "Population stability index of a feature.",
            _FEATURE, registry=r, multiprocess_mode=_MODE,
        )  # fmt: skip
        self.drifted = Gauge(
            "inferd_drift_feature_drifted", "1 when a feature drifted in the latest check.",
            _FEATURE, registry=r, multiprocess_mode=_MODE,
        )  # fmt: skip

    def update(self, results: Mapping[tuple[str, int], Mapping[str, Any]]) -> None:
        """Set the gauges of every (model, version) from its latest stored result."""
        for (model, version), result in results.items():
            labels = (model, str(version))
            self.detected.labels(*labels).set(1.0 if result.get("drifted") else 0.0)
            self.samples.labels(*labels).set(float(result.get("samples", 0)))
            self.checked.labels(*labels).set(float(result.get("checked_at", 0.0)))
            mmd = result.get("multivariate")
            if mmd:
                self.mmd_p.labels(*labels).set(float(mmd["p_adjusted"]))
            for feature in result.get("features", []):
                name = ("output." if feature.get("kind") == "output" else "") + feature["name"]
                self.p_value.labels(*labels, name).set(float(feature["p_adjusted"]))
                self.psi.labels(*labels, name).set(float(feature["psi"]))
                self.drifted.labels(*labels, name).set(1.0 if feature["drifted"] else 0.0)
