"""LightGBMRuntime on small real boosters saved as text."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pytest
from fixtures.models import load_runtime

from inferd.errors import ConfigError, FrameworkMissing, ModelLoadError, ModelNotReady
from inferd.runtimes import runtime_class
from inferd.runtimes.lightgbm import LightGBMRuntime, text_model_problem

Classifier = Callable[[str], tuple[Path, Any]]
Data = tuple[np.ndarray, np.ndarray]


def test_platform_resolves_to_lightgbm_runtime() -> None:
    assert runtime_class("lightgbm") is LightGBMRuntime


def test_multiclass_matches_lgbmclassifier(classifier: Classifier, classes_data: Data) -> None:
    path, model = classifier("lightgbm")
    runtime = load_runtime("lightgbm", path)
    signature = runtime.signature()
    assert [(s.name, s.datatype, s.shape) for s in signature.inputs] == [("x", "FP64", (-1, 6))]
    assert [(s.name, s.datatype, s.shape) for s in signature.outputs] == [
        ("predict", "INT64", (-1,)),
        ("predict_proba", "FP64", (-1, 3)),
        ("margin", "FP64", (-1, 3)),
    ]
    x = classes_data[0]
    out = runtime.infer({"x": x})
    np.testing.assert_array_equal(out["predict"], model.predict(x))
    np.testing.assert_array_equal(out["predict_proba"], model.predict_proba(x))
    np.testing.assert_array_equal(out["margin"], model.predict(x, raw_score=True))


def test_binary_probabilities_have_two_columns(classifier: Classifier, classes_data: Data) -> None:
    path, model = classifier("lightgbm_binary")
    x = classes_data[0]
    out = load_runtime("lightgbm", path, parameters={"intra_op_threads": 1}).infer({"x": x})
    np.testing.assert_array_equal(out["predict_proba"], model.predict_proba(x))
    np.testing.assert_array_equal(out["predict"], model.predict(x))


def test_regressor_gives_predict_and_margin(tmp_path: Path, classes_data: Data) -> None:
    x = classes_data[0]
    model = lightgbm.LGBMRegressor(n_estimators=5, n_jobs=1, verbose=-1).fit(x, x[:, 0] * 3)
    path = tmp_path / "1" / "model.txt"
    path.parent.mkdir()
    model.booster_.save_model(str(path))
    runtime = load_runtime("lightgbm", path)
    assert [s.name for s in runtime.signature().outputs] == ["predict", "margin"]
    np.testing.assert_array_equal(runtime.infer({"x": x[:20]})["predict"], model.predict(x[:20]))


def test_truncated_files_never_reach_lightgbm(tmp_path: Path, classifier: Classifier) -> None:
    # LightGBM aborts the process on some of these cuts; the runtime must refuse them all.
    data = classifier("lightgbm")[0].read_bytes()
    marks = [b"\nTree=0\n", b"\nTree=7\n", b"end of trees", b"parameters:\n[boost"]
    cuts = [10, len(data) // 2, len(data) - 30] + [data.find(m) + len(m) - 1 for m in marks]
    for index, cut in enumerate(cuts):
        path = tmp_path / str(index) / "model.txt"
        path.parent.mkdir()
        path.write_bytes(data[:cut])
        with pytest.raises(ModelLoadError, match="truncated") as info:
            load_runtime("lightgbm", path)
        assert str(path) in str(info.value)


def test_structure_check_explains_what_is_wrong(classifier: Classifier) -> None:
    data = classifier("lightgbm")[0].read_bytes()
    assert text_model_problem(data) is None
    assert "not a LightGBM text model" in (text_model_problem(b"{}") or "")
    assert "no trees found" in (text_model_problem(b"tree\nversion=v4\n") or "")
    edited = data.replace(b"tree_sizes=", b"tree_sizes=1 ", 1)
    assert "not where tree_sizes puts it" in (text_model_problem(edited) or "")


def test_a_foreign_file_is_refused(tmp_path: Path, classifier: Classifier) -> None:
    path = tmp_path / "1" / "model.txt"
    path.parent.mkdir()
    path.write_bytes(classifier("xgboost")[0].read_bytes())
    with pytest.raises(ModelLoadError, match="not a LightGBM text model") as info:
        load_runtime("lightgbm", path)
    assert str(path) in str(info.value)


def test_bad_parameter_raises_config_error(classifier: Classifier) -> None:
    with pytest.raises(ConfigError, match=r"parameters\.num_threads"):
        load_runtime("lightgbm", classifier("lightgbm")[0], parameters={"num_threads": 2})


def test_gpu_devices_are_refused(classifier: Classifier) -> None:
    with pytest.raises(ModelLoadError, match=r"'cuda:0'.*LightGBM models run on the CPU"):
        load_runtime("lightgbm", classifier("lightgbm")[0], device="cuda:0")


def test_missing_lightgbm_names_the_extra(
    classifier: Classifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)
    with pytest.raises(FrameworkMissing, match=r"pip install 'inferd\[lightgbm\]'"):
        load_runtime("lightgbm", classifier("lightgbm")[0])


def test_unload_frees_and_refuses_inference(classifier: Classifier) -> None:
    runtime = load_runtime("lightgbm", classifier("lightgbm")[0])
    runtime.unload()
    assert runtime.memory_bytes() == 0
    with pytest.raises(ModelNotReady):
        runtime.infer({"x": np.ones((1, 6))})
