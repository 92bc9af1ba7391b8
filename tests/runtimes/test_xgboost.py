"""XGBoostRuntime on small real boosters saved as JSON and UBJSON."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost
from fixtures.models import build_xgboost_classifier, load_runtime

from inferd.errors import ConfigError, FrameworkMissing, ModelLoadError, ModelNotReady
from inferd.runtimes import runtime_class
from inferd.runtimes.xgboost import XGBoostRuntime, ubjson_problem

Classifier = Callable[[str], tuple[Path, Any]]
Data = tuple[np.ndarray, np.ndarray]


def test_platform_resolves_to_xgboost_runtime() -> None:
    assert runtime_class("xgboost") is XGBoostRuntime


@pytest.mark.parametrize("kind", ["xgboost", "xgboost_ubj"])
def test_multiclass_matches_xgbclassifier(
    kind: str, classifier: Classifier, classes_data: Data
) -> None:
    path, model = classifier(kind)
    runtime = load_runtime("xgboost", path)
    signature = runtime.signature()
    assert [(s.name, s.datatype, s.shape) for s in signature.inputs] == [("x", "FP32", (-1, 6))]
    assert [(s.name, s.datatype, s.shape) for s in signature.outputs] == [
        ("predict", "INT64", (-1,)),
        ("predict_proba", "FP32", (-1, 3)),
        ("margin", "FP32", (-1, 3)),
    ]
    x = classes_data[0].astype(np.float32)
    out = runtime.infer({"x": x})
    np.testing.assert_array_equal(out["predict"], model.predict(x))
    np.testing.assert_array_equal(out["predict_proba"], model.predict_proba(x))
    np.testing.assert_array_equal(out["margin"], model.predict(x, output_margin=True))


def test_binary_probabilities_have_two_columns(classifier: Classifier, classes_data: Data) -> None:
    path, model = classifier("xgboost_binary")
    runtime = load_runtime("xgboost", path)
    x = classes_data[0].astype(np.float32)
    out = runtime.infer({"x": x})
    assert out["predict_proba"].shape == (1000, 2)
    np.testing.assert_array_equal(out["predict_proba"], model.predict_proba(x))
    np.testing.assert_array_equal(out["predict"], model.predict(x))
    assert out["margin"].shape == (1000,)


def test_softmax_objective_gets_probabilities_from_margins(
    tmp_path: Path, classes_data: Data
) -> None:
    x, y = classes_data
    path = tmp_path / "1" / "model.json"
    model = build_xgboost_classifier(path, x[:300], y[:300], trees=5, objective="multi:softmax")
    out = load_runtime("xgboost", path).infer({"x": x[:50].astype(np.float32)})
    np.testing.assert_allclose(out["predict_proba"].sum(axis=1), 1.0, rtol=1e-5)
    booster_labels = model.get_booster().inplace_predict(x[:50].astype(np.float32))
    np.testing.assert_array_equal(out["predict"], booster_labels.astype(np.int64))


def test_regressor_gives_predict_and_margin(tmp_path: Path, classes_data: Data) -> None:
    x = classes_data[0].astype(np.float32)
    model = xgboost.XGBRegressor(n_estimators=5, n_jobs=1).fit(x, x[:, 0] * 3)
    path = tmp_path / "1" / "model.ubj"
    path.parent.mkdir()
    model.save_model(str(path))
    runtime = load_runtime("xgboost", path, parameters={"intra_op_threads": 1})
    assert [s.name for s in runtime.signature().outputs] == ["predict", "margin"]
    np.testing.assert_array_equal(runtime.infer({"x": x[:20]})["predict"], model.predict(x[:20]))


def test_gblinear_computes_2x_plus_1(linear_model: Callable[[str], Path]) -> None:
    runtime = load_runtime(
        "xgboost",
        linear_model("xgboost"),
        inputs=[{"name": "x", "datatype": "FP32", "shape": [-1]}],
        outputs=[{"name": "y", "datatype": "FP32", "shape": [-1]}],
    )
    np.testing.assert_array_equal(
        runtime.infer({"x": np.array([1, 2, 3], np.float32)})["y"], [3, 5, 7]
    )


@pytest.mark.parametrize("kind", ["xgboost", "xgboost_ubj"])
@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.999])
def test_truncated_files_fail_cleanly(
    tmp_path: Path, classifier: Classifier, kind: str, fraction: float
) -> None:
    source = classifier(kind)[0]
    path = tmp_path / "5" / source.name
    path.parent.mkdir()
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelLoadError) as info:
        load_runtime("xgboost", path)
    assert str(path) in str(info.value)
    assert "version 5" in str(info.value)


def test_ubjson_check_finds_every_kind_of_damage(classifier: Classifier) -> None:
    data = classifier("xgboost_ubj")[0].read_bytes()
    assert ubjson_problem(data) is None
    assert "truncated" in (ubjson_problem(data[:-1]) or "")
    assert "stray bytes" in (ubjson_problem(data + b"Z") or "")
    assert "unknown marker" in (ubjson_problem(b"[X]") or "")
    assert "truncated" in (ubjson_problem(b"[$d#U\x05\x00\x00") or "")
    assert ubjson_problem(b"{U\x01aSU\x02hiU\x01b[$U#U\x02\x01\x02}") is None


def test_a_foreign_file_is_refused(tmp_path: Path, classifier: Classifier) -> None:
    path = tmp_path / "1" / "model.json"
    path.parent.mkdir()
    path.write_bytes(classifier("lightgbm")[0].read_bytes())
    with pytest.raises(ModelLoadError, match="not a loadable XGBoost model") as info:
        load_runtime("xgboost", path)
    assert str(path) in str(info.value)
    other = tmp_path / "2" / "model.bin"
    other.parent.mkdir()
    other.write_bytes(b"{}")
    with pytest.raises(ModelLoadError, match=r"expected model\.json or model\.ubj"):
        load_runtime("xgboost", other)


@pytest.mark.parametrize("parameters", [{"intra_op_threads": "4"}, {"nthread": 4}])
def test_bad_parameters_raise_config_error(
    classifier: Classifier, parameters: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError, match=r"parameters\."):
        load_runtime("xgboost", classifier("xgboost")[0], parameters=parameters)


def test_cuda_without_a_gpu_names_model_and_device(classifier: Classifier) -> None:
    path = classifier("xgboost")[0]
    if load_runtime("xgboost", path, device="auto").device != "cpu":
        pytest.skip("needs a machine without a GPU")
    with pytest.raises(ModelLoadError, match=r"model 'm'.*'cuda:0'.*XGBoost sees no GPU"):
        load_runtime("xgboost", path, device="cuda:0")


def test_missing_xgboost_names_the_extra(
    classifier: Classifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "xgboost", None)
    with pytest.raises(FrameworkMissing, match=r"pip install 'inferd\[xgboost\]'"):
        load_runtime("xgboost", classifier("xgboost")[0])


def test_unload_frees_and_refuses_inference(classifier: Classifier) -> None:
    runtime = load_runtime("xgboost", classifier("xgboost")[0])
    assert runtime.memory_bytes() > 0
    runtime.unload()
    assert runtime.memory_bytes() == 0
    with pytest.raises(ModelNotReady):
        runtime.infer({"x": np.ones((1, 6), np.float32)})
