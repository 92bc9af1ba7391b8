"""Monitoring: Prometheus metrics (drift, alerts and tracing arrive with their issues)."""

from inferd.monitoring.metrics import Metrics

__all__ = ["Metrics"]
