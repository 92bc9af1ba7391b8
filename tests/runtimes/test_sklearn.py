"""SklearnRuntime on small real estimators saved with skops, joblib and pickle."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import skops.io
from fixtures.models import load_runtime
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from inferd.errors import ConfigError, FrameworkMissing, ModelLoadError, ModelNotReady
from inferd.runtimes import runtime_class
from inferd.runtimes.sklearn import SklearnRuntime

Classifier = Callable[[str], tuple[Path, Any]]
LINEAR_IO = {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
}


def test_platform_resolves_to_sklearn_runtime() -> None:
    assert runtime_class("sklearn") is SklearnRuntime


def test_signature_comes_from_the_estimator(linear_model: Callable[[str], Path]) -> None:
    signature = load_runtime("sklearn", linear_model("sklearn")).signature()
    assert [(s.name, s.datatype, s.shape) for s in signature.inputs] == [("x", "FP64", (-1, 1))]
    assert [(s.name, s.datatype, s.shape) for s in signature.outputs] == [
        ("predict", "FP64", (-1,))
    ]


def test_linear_with_declared_fp32_vector(linear_model: Callable[[str], Path]) -> None:
    runtime = load_runtime("sklearn", linear_model("sklearn"), **LINEAR_IO)
    runtime.warmup([1, 64])
    out = runtime.infer({"x": np.array([1, 2, 3], np.float32)})
    assert out["y"].dtype == np.float32
    np.testing.assert_array_equal(out["y"], [3, 5, 7])


def test_classifier_serves_labels_and_probabilities(
    classifier: Classifier, classes_data: tuple[np.ndarray, np.ndarray]
) -> None:
    path, model = classifier("sklearn")
    runtime = load_runtime("sklearn", path)
    signature = runtime.signature()
    assert [(s.name, s.datatype, s.shape) for s in signature.outputs] == [
        ("predict", "INT64", (-1,)),
        ("predict_proba", "FP64", (-1, 3)),
    ]
    x, _ = classes_data
    out = runtime.infer({"x": x})
    np.testing.assert_array_equal(out["predict"], model.predict(x))
    np.testing.assert_array_equal(out["predict_proba"], model.predict_proba(x))


def test_declared_outputs_pick_by_name_then_by_position(classifier: Classifier) -> None:
    path, model = classifier("sklearn")
    outputs = [
        {"name": "predict_proba", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "label", "datatype": "INT32", "shape": [-1]},
    ]
    runtime = load_runtime("sklearn", path, outputs=outputs)
    x = np.random.default_rng(3).standard_normal((4, 6))
    out = runtime.infer({"x": x})
    assert out["predict_proba"].dtype == np.float32
    np.testing.assert_allclose(out["predict_proba"], model.predict_proba(x), rtol=1e-6)
    np.testing.assert_array_equal(out["label"], model.predict(x))
    assert out["label"].dtype == np.int32


def test_string_labels_are_bytes(tmp_path: Path) -> None:
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(x, np.array(["cat", "cat", "dog", "dog"]))
    path = tmp_path / "1" / "model.skops"
    path.parent.mkdir()
    skops.io.dump(model, str(path))
    runtime = load_runtime("sklearn", path)
    assert runtime.signature().outputs[0].datatype == "BYTES"
    assert runtime.infer({"x": np.array([[0.0], [3.0]])})["predict"].tolist() == [b"cat", b"dog"]


@pytest.mark.parametrize("suffix", [".joblib", ".pkl"])
def test_pickles_need_trust_pickle(
    tmp_path: Path, classifier: Classifier, suffix: str, classes_data: tuple[np.ndarray, np.ndarray]
) -> None:
    _, model = classifier("sklearn")
    path = tmp_path / "1" / f"model{suffix}"
    path.parent.mkdir()
    if suffix == ".joblib":
        joblib.dump(model, path)
    else:
        path.write_bytes(pickle.dumps(model))
    with pytest.raises(ModelLoadError) as info:
        load_runtime("sklearn", path)
    for text in [str(path), "runs any code", "skops", "trust_pickle: true"]:
        assert text in str(info.value)
    runtime = load_runtime("sklearn", path, trust_pickle=True)
    x = classes_data[0][:10]
    np.testing.assert_array_equal(runtime.infer({"x": x})["predict"], model.predict(x))


def test_untrusted_skops_types_must_be_listed(classifier: Classifier) -> None:
    path, model = classifier("sklearn_forest")
    with pytest.raises(ModelLoadError) as info:
        load_runtime("sklearn", path)
    assert "sklearn.tree._tree.Tree" in str(info.value)
    assert "parameters.trusted_types" in str(info.value)
    runtime = load_runtime(
        "sklearn", path, parameters={"trusted_types": ["sklearn.tree._tree.Tree"]}
    )
    x = np.zeros((2, 6))
    np.testing.assert_array_equal(runtime.infer({"x": x})["predict_proba"], model.predict_proba(x))


def test_trusted_types_must_be_a_list_of_names(classifier: Classifier) -> None:
    with pytest.raises(ConfigError, match=r"parameters\.trusted_types"):
        load_runtime("sklearn", classifier("sklearn")[0], parameters={"trusted_types": "all"})


def test_truncated_skops_names_the_file(tmp_path: Path, classifier: Classifier) -> None:
    path = tmp_path / "2" / "model.skops"
    path.parent.mkdir()
    path.write_bytes(classifier("sklearn")[0].read_bytes()[:300])
    with pytest.raises(ModelLoadError, match="not a loadable skops file") as info:
        load_runtime("sklearn", path)
    assert str(path) in str(info.value)


def test_an_object_without_predict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "1" / "model.skops"
    path.parent.mkdir()
    skops.io.dump(StandardScaler().fit(np.ones((3, 2))), str(path))
    with pytest.raises(ModelLoadError, match=r"holds a StandardScaler, which has no predict\(\)"):
        load_runtime("sklearn", path)


def test_an_unfitted_estimator_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "1" / "model.skops"
    path.parent.mkdir()
    skops.io.dump(LogisticRegression(), str(path))
    inputs = [{"name": "x", "datatype": "FP64", "shape": [-1, 2]}]
    with pytest.raises(ModelLoadError, match=r"NotFittedError.*is it fitted"):
        load_runtime("sklearn", path, inputs=inputs)


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 5]}]}, "6 features"),
        (
            {"inputs": [{"name": "a", "datatype": "FP64", "shape": [-1, 6]}] * 1
             + [{"name": "b", "datatype": "FP64", "shape": [-1, 6]}]},
            "expected one input",
        ),
        ({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [-1, 6]}]}, "numeric"),
        ({"outputs": [{"name": "p", "datatype": "FP64", "shape": [-1]}] * 1
          + [{"name": "q", "datatype": "FP64", "shape": [-1]}] * 1
          + [{"name": "r", "datatype": "FP64", "shape": [-1]}]}, "at most 2"),
        ({"outputs": [{"name": "predict_proba", "datatype": "FP64", "shape": [-1, 4]}]}, "[-1, 3]"),
        ({"outputs": [{"name": "label", "datatype": "BYTES", "shape": [-1]}]}, "INT64 from"),
    ],
)  # fmt: skip
def test_model_yaml_must_agree_with_the_estimator(
    classifier: Classifier, fields: dict[str, Any], fragment: str
) -> None:
    path = classifier("sklearn")[0]
    with pytest.raises(ModelLoadError) as info:
        load_runtime("sklearn", path, **fields)
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_gpu_devices_are_refused(classifier: Classifier) -> None:
    with pytest.raises(ModelLoadError, match=r"'cuda:0'.*scikit-learn models run on the CPU"):
        load_runtime("sklearn", classifier("sklearn")[0], device="cuda:0")
    assert load_runtime("sklearn", classifier("sklearn")[0], device="auto").device == "cpu"


def test_unknown_file_type(tmp_path: Path) -> None:
    path = tmp_path / "1" / "model.bin"
    path.parent.mkdir()
    path.write_bytes(b"\x00")
    with pytest.raises(ModelLoadError, match=r"unknown scikit-learn file type '\.bin'"):
        load_runtime("sklearn", path)


def test_missing_sklearn_names_the_extra(
    classifier: Classifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(FrameworkMissing, match=r"pip install 'inferd\[sklearn\]'"):
        load_runtime("sklearn", classifier("sklearn")[0])


def test_unload_frees_and_refuses_inference(classifier: Classifier) -> None:
    runtime = load_runtime("sklearn", classifier("sklearn")[0])
    assert runtime.memory_bytes() > 0
    runtime.unload()
    assert runtime.memory_bytes() == 0
    with pytest.raises(ModelNotReady):
        runtime.infer({"x": np.ones((1, 6))})
