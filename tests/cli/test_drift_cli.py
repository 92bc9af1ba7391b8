"""`inferd models register --reference`, `models reference` and `models drift` on a registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inferd.cli.main import main
from inferd.monitoring.drift_check import DriftSettings
from inferd.monitoring.drift_store import DriftStore
from inferd.registry import Registry
from inferd.serving.examples import build_linear_onnx


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["models", *args]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_register_with_a_reference_then_check_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERD_HOME", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    artifact = tmp_path / "m.onnx"
    build_linear_onnx(artifact)
    rng = np.random.default_rng(0)
    x = rng.normal(size=2_000)
    reference = tmp_path / "ref.csv"
    reference.write_text("x,output.y\n" + "".join(f"{a},{2 * a + 1}\n" for a in x))
    base = ["--registry-url", url]
    record = _json(capsys, "--json", *base, "register", "lin", str(artifact), "--platform",
                   "onnx", "--reference", str(reference))  # fmt: skip
    summary = record["reference"]
    assert isinstance(summary, dict)
    assert (summary["rows"], sorted(summary["outputs"])) == (2_000, ["y"])
    # A server's flush, as two workers would have written it: x shifted by half an sd.
    registry = Registry(url)
    store = DriftStore(registry)
    store.put_settings("lin", DriftSettings(min_samples=100, mmd_permutations=49))
    for source in ("w1", "w2"):
        shifted = rng.normal(0.5, 1.0, 5_000)
        batch = {"x": shifted.tolist(), "output.y": (2 * shifted + 1).tolist()}
        store.add_batches(source, {("lin", 1): (5_000, batch)}, datetime.now(UTC))
    registry.close()
    result = _json(capsys, *base, "drift", "lin", "--json")
    versions = result["versions"]
    assert isinstance(versions, list)
    (one,) = versions
    assert (one["status"], one["samples"], one["window"]["seen"]) == ("drift", 10_000, 10_000)
    assert main(["models", *base, "drift", "lin", "--version", "1"]) == 0
    text = capsys.readouterr().out
    assert "lin version 1: drift, 10000 rows" in text
    assert "input  x" in text


def test_a_bad_reference_file_registers_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERD_HOME", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    artifact = tmp_path / "m.onnx"
    build_linear_onnx(artifact)
    bad = tmp_path / "ref.txt"
    bad.write_text("x\n1\n")
    args = ["models", "--registry-url", url, "register", "lin", str(artifact), "--platform",
            "onnx", "--reference", str(bad)]  # fmt: skip
    assert main(args) == 2
    assert "--reference" in capsys.readouterr().err
    assert main(["models", "--registry-url", url, "list"]) == 0
    assert "(no models)" in capsys.readouterr().out
    assert main(["models", "--registry-url", url, "reference", "lin", "1", str(bad)]) == 2
