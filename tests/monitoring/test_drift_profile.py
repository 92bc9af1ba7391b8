"""Reference profiles: bounded, row-aligned, JSON round trips; reading CSV and Parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from inferd.monitoring.drift_dataset import read_columns
from inferd.monitoring.drift_profile import (
    MAX_CATEGORIES,
    OTHER,
    SAMPLE_SIZE,
    FeatureProfile,
    Profile,
    columns_of,
)


def test_columns_are_named_after_tensors_and_their_positions() -> None:
    columns = columns_of({"x": np.arange(6.0).reshape(3, 2), "k": np.array([1, 2, 3])}, 2)
    assert sorted(columns) == ["k", "x[0]", "x[1]"]
    assert columns["x[1]"].tolist() == [1.0, 3.0]
    assert columns["k"].tolist() == [1, 2]


def test_a_profile_is_bounded_row_aligned_and_survives_json() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=50_000)
    a[7] = np.nan
    profile = Profile.of({"a": a, "b": a * 2.0}, {"y": a + 1.0})
    stored = Profile.from_dict(orjson.loads(orjson.dumps(profile.to_dict())))
    assert stored.rows == 50_000
    sample_a = np.asarray(stored.inputs["a"].sample)
    assert sample_a.size == SAMPLE_SIZE
    # The same rows for every feature: the multivariate test compares rows of one table.
    np.testing.assert_allclose(np.asarray(stored.inputs["b"].sample), sample_a * 2.0)
    np.testing.assert_allclose(np.asarray(stored.outputs["y"].sample), sample_a + 1.0)
    assert stored.inputs["a"].missing == 1
    assert stored.inputs["a"].mean == pytest.approx(np.nanmean(a))


def test_categories_are_counted_and_the_rarest_lumped() -> None:
    values = [f"c{i}" for i in range(MAX_CATEGORIES + 20)] + ["c0"] * 5
    feature = FeatureProfile.of(np.asarray(values, dtype=object))
    assert feature.kind == "categorical"
    assert len(feature.counts) == MAX_CATEGORIES + 1
    assert feature.counts["c0"] == 6
    assert feature.counts[OTHER] == 20
    assert sorted(set(feature.reference().tolist())) == sorted(feature.counts)
    with pytest.raises(ValueError, match=r"profile\.z: expected"):
        FeatureProfile.from_dict("z", {"kind": "numeric"})


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="columns of one length"):
        Profile.of({"a": [1.0, 2.0], "b": [1.0]})


def test_csv_and_parquet_references_are_read(tmp_path: Path) -> None:
    csv = tmp_path / "ref.csv"
    csv.write_text("age,plan\n31,free\n,pro\n45,free\n")
    columns = read_columns(str(csv))
    assert columns["plan"].tolist() == ["free", "pro", "free"]
    assert np.isnan(columns["age"][1])
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    parquet = tmp_path / "ref.parquet"
    pq.write_table(pa.table({"age": [1.0, 2.0], "plan": ["a", None]}), parquet)
    columns = read_columns(parquet.as_uri())
    assert columns["age"].tolist() == [1.0, 2.0]
    assert columns["plan"].tolist() == ["a", None]
    with pytest.raises(ValueError, match=r"expected a \.csv or \.parquet file"):
        read_columns(str(tmp_path / "ref.json"))
    with pytest.raises(ValueError, match="cannot read"):
        read_columns(str(tmp_path / "missing.csv"))
