"""One drift check: a reference profile against a window of sampled requests.

The statistics are :func:`inferd.stats.detect_drift`'s: Kolmogorov-Smirnov per numeric
feature, chi-square per categorical one, PSI for both, MMD over the numeric features, all
p-values of one check corrected as one family (Holm by default, so the chance of any false
alarm in a check stays at or below ``alpha``). Outputs are features too (prediction drift),
named ``output.<name>`` inside the family and reported with ``kind: "output"``.

A feature drifts when its corrected test rejects, or when ``psi_threshold`` is set and its
PSI reaches it. With fewer than ``min_samples`` rows in the window no verdict is given
(``status: "insufficient_data"``): PSI's noise grows like 1/n and would alarm on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from inferd.monitoring.drift_profile import Profile
from inferd.stats import detect_drift

OUTPUT = "output."


class DriftSettings(BaseModel):
    """Drift detection of one model (every version); stored in the registry."""

    model_config = ConfigDict(extra="forbid")

    sample_rate: float = Field(0.01, ge=0.0, le=1.0, description="Share of requests sampled.")
    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="False-alarm level of one check.")
    correction: Literal["holm", "bh"] = Field("holm", description="Multiple-testing correction.")
    psi_threshold: float | None = Field(
        0.25, gt=0.0, description="A feature whose PSI reaches this drifts too; null: never."
    )
    window_s: float = Field(3600.0, gt=0.0, description="The window: the last this many seconds.")
    min_samples: int = Field(500, ge=10, description="Fewer sampled rows give no verdict.")
    max_samples: int = Field(10_000, ge=100, le=100_000, description="Rows of a window tested.")
    reference_requests: int | None = Field(
        None, ge=100, description="Without a reference: the first this many sampled rows."
    )
    categorical: list[str] = Field(default_factory=list, description="Numeric but categorical.")
    multivariate: bool = Field(True, description="Add the MMD test over numeric features.")
    mmd_permutations: int = Field(200, ge=19, le=2000, description="MMD's permutations.")
    mmd_samples: int = Field(500, ge=20, le=2000, description="MMD's rows per side at most.")
    check_interval_s: float = Field(60.0, ge=1.0, description="How often the leader checks.")


def _current(profile: Profile, window: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """Reference and window arrays of every feature both have, keyed for one family."""
    reference: dict[str, npt.NDArray[Any]] = {}
    current: dict[str, npt.NDArray[Any]] = {}
    for prefix, features in (("", profile.inputs), (OUTPUT, profile.outputs)):
        for name, feature in features.items():
            values = window.get(prefix + name)
            if values is None or len(values) == 0:
                continue
            if feature.kind == "categorical":
                current[prefix + name] = np.asarray([str(v) for v in values], dtype=object)
            else:
                current[prefix + name] = np.asarray(
                    [np.nan if v is None else v for v in values], dtype=np.float64
                )
            reference[prefix + name] = feature.reference()
    return {"reference": reference, "current": current}


def check(
    profile: Profile, window: Mapping[str, Sequence[Any]], settings: DriftSettings,
    seed: int | None = 0,
) -> dict[str, Any]:  # fmt: skip
    """Test a window (feature -> values, outputs as ``output.<name>``) against a profile.

    Returns:
        ``status`` (ok, drift, insufficient_data), ``drifted``, ``samples``, per-feature
        rows and the multivariate test, JSON-ready.

    Raises:
        ValueError: a window value that is not a number where the reference has numbers.
    """
    samples = max((len(v) for v in window.values()), default=0)
    base: dict[str, Any] = {
        "samples": samples, "alpha": settings.alpha, "correction": settings.correction,
        "psi_threshold": settings.psi_threshold, "features": [], "multivariate": None,
        "missing": sorted(set(profile.inputs) - set(window)),
    }  # fmt: skip
    sides = _current(profile, window)
    if samples < settings.min_samples or not sides["current"]:
        return {**base, "status": "insufficient_data", "drifted": False}
    categorical = [n for n, v in sides["reference"].items() if v.dtype == object]
    report = detect_drift(
        sides["reference"], sides["current"], settings.alpha, settings.correction,
        categorical=categorical, multivariate=settings.multivariate, seed=seed,
        permutations=settings.mmd_permutations, max_samples=settings.mmd_samples,
    )  # fmt: skip
    threshold = settings.psi_threshold
    features = []
    for f in report.features:
        output = f.name.startswith(OUTPUT)
        psi_high = threshold is not None and f.psi >= threshold
        features.append({
            "name": f.name.removeprefix(OUTPUT) if output else f.name,
            "kind": "output" if output else "input", "test": f.test,
            "statistic": f.statistic, "p_value": f.p_value, "p_adjusted": f.p_adjusted,
            "psi": f.psi, "drifted": f.drifted or psi_high,
        })  # fmt: skip
    mmd = None
    if report.multivariate is not None and report.multivariate_p_adjusted is not None:
        p_adj = report.multivariate_p_adjusted
        mmd = {
            "test": "mmd", "statistic": report.multivariate.statistic,
            "p_value": report.multivariate.p_value, "p_adjusted": p_adj,
            "drifted": p_adj <= settings.alpha, "samples": list(report.multivariate.samples),
        }  # fmt: skip
    drifted = any(f["drifted"] for f in features) or bool(mmd and mmd["drifted"])
    status = "drift" if drifted else "ok"
    return {**base, "status": status, "drifted": drifted, "features": features,
            "multivariate": mmd}  # fmt: skip


def merge_batches(
    batches: Sequence[tuple[int, Mapping[str, Sequence[Any]]]], max_rows: int,
    rng: np.random.Generator,
) -> tuple[dict[str, list[Any]], int]:  # fmt: skip
    """Merge flushed batches (``seen`` requests, a uniform sample of them) into one window.

    A batch kept ``k`` of its ``seen`` sampled rows, so each of its rows stands for
    ``seen / k`` of them. Thinning every batch to the smallest kept share ``min(k / seen)``
    gives every sampled row of every process the same chance to be in the window: the union
    is again a uniform sample, which a plain concatenation would not be (a busy process's
    batch overflows, a quiet one's does not). At most ``max_rows`` rows are then kept, drawn
    without replacement.

    Returns:
        feature -> values, and how many sampled rows the window stands for.
    """
    kept = [(seen, data, _rows(data)) for seen, data in batches if _rows(data)]
    if not kept:
        return {}, 0
    share = min(rows / max(seen, rows) for seen, _, rows in kept)
    columns: dict[str, list[Any]] = {}
    total = 0
    for seen, data, rows in kept:
        total += max(seen, rows)
        keep = rows / max(seen, rows)
        chosen = np.flatnonzero(rng.random(rows) < share / keep) if keep > share else None
        _append(columns, data, chosen, rows)
    size = max((len(v) for v in columns.values()), default=0)
    if size > max_rows:
        pick = np.sort(rng.choice(size, max_rows, replace=False))
        columns = {name: [values[i] for i in pick] for name, values in columns.items()}
    return columns, total


def _rows(data: Mapping[str, Sequence[Any]]) -> int:
    return max((len(v) for v in data.values()), default=0)


def _append(
    columns: dict[str, list[Any]], data: Mapping[str, Sequence[Any]],
    chosen: npt.NDArray[np.intp] | None, rows: int,
) -> None:  # fmt: skip
    # A feature a batch lacks (a new output) is padded with None so rows stay aligned.
    before = max((len(v) for v in columns.values()), default=0)
    added = rows if chosen is None else int(chosen.size)
    for name in set(columns) | set(data):
        target = columns.setdefault(name, [None] * before)
        values = data.get(name)
        if values is None or len(values) != rows:
            target.extend([None] * added)
        elif chosen is None:
            target.extend(values)
        else:
            target.extend(values[i] for i in chosen)
