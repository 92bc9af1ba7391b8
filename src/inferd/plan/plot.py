"""A PNG of a simulation: traffic against ready capacity, replicas, p99 against the SLO.

matplotlib is an optional extra (``pip install inferd[plan]``), imported only here and only
when a plot is asked for; it draws with the Agg backend (no display needed).
"""

from __future__ import annotations

import math
from pathlib import Path

from inferd.errors import ConfigError
from inferd.plan.simulate import Result


def write_png(result: Result, path: Path, title: str = "") -> None:
    """Draw ``result`` into ``path`` (PNG).

    Raises:
        ConfigError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ConfigError("plot", "--plot", "needs matplotlib: pip install 'inferd[plan]'") from err
    steps = result.steps
    t = [s.time_s for s in steps]
    figure, (traffic, replicas, latency) = plt.subplots(3, 1, sharex=True, figsize=(10, 8))
    traffic.plot(t, [s.rps for s in steps], label="offered requests/s")
    traffic.plot(t, [s.ready * result.capacity_rps for s in steps],
                 label="ready replicas x capacity at SLO")  # fmt: skip
    traffic.set_ylabel("requests/s")
    replicas.step(t, [s.replicas for s in steps], where="post", label="desired (HPA)")
    replicas.step(t, [s.ready for s in steps], where="post", label="ready")
    replicas.set_ylabel("replicas")
    ceiling = result.slo_p99_ms * 4  # overload is drawn at the top, not at infinity
    latency.plot(t, [min(s.p99_ms, ceiling) for s in steps], label="predicted p99")
    latency.axhline(result.slo_p99_ms, color="red", linestyle="--", label="SLO")
    latency.set_ylabel("ms")
    latency.set_xlabel("seconds")
    for axes in (traffic, replicas, latency):
        for start, end in _violations(result):
            axes.axvspan(start, end, color="red", alpha=0.15, linewidth=0)
        axes.legend(loc="upper right", fontsize="small")
    figure.suptitle(title or f"{result.violation_s} s over the SLO "
                    f"({result.violated_share:.1%} of requests)")  # fmt: skip
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)


def _violations(result: Result) -> list[tuple[float, float]]:
    """Spans of consecutive violating seconds, as (start, end)."""
    spans: list[tuple[float, float]] = []
    for step in result.steps:
        if not step.violation:
            continue
        if spans and math.isclose(spans[-1][1], step.time_s):
            spans[-1] = (spans[-1][0], step.time_s + 1)
        else:
            spans.append((step.time_s, step.time_s + 1))
    return spans
