"""PythonRuntime on model.py files written by the tests."""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fixtures.models import load_runtime

from inferd.errors import ConfigError, ModelLoadError, ModelNotReady
from inferd.runtimes import runtime_class
from inferd.runtimes.python import PythonRuntime

LINEAR_IO: dict[str, Any] = {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
}


def model_py(tmp_path: Path, source: str, version: int = 1) -> Path:
    path = tmp_path / str(version) / "model.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def test_platform_resolves_to_python_runtime() -> None:
    assert runtime_class("python") is PythonRuntime


def test_linear_python_model(linear_model: Callable[[str], Path]) -> None:
    runtime = load_runtime("python", linear_model("python"), **LINEAR_IO)
    runtime.warmup([1, 8])
    out = runtime.infer({"x": np.array([1, 2, 3], np.float32)})
    np.testing.assert_array_equal(out["y"], [3, 5, 7])
    assert out["y"].dtype == np.float32
    assert runtime.device == "cpu"
    assert runtime.memory_bytes() > 0


def test_a_runtime_subclass_brings_its_own_signature_and_files(tmp_path: Path) -> None:
    path = model_py(
        tmp_path,
        """
        import numpy as np
        from inferd.runtimes import Runtime
        from inferd.types import Signature, TensorSpec

        class Scale(Runtime):
            def load(self):
                self.factor = float((self.artifact.parent / "factor.txt").read_text())

            def signature(self):
                return Signature((TensorSpec("x", "FP64", (-1, 2)),),
                                 (TensorSpec("y", "FP64", (-1, 2)),))

            def infer(self, inputs):
                return {"y": inputs["x"] * self.factor}
        """,
    )
    (path.parent / "factor.txt").write_text("2.5")
    runtime = load_runtime("python", path)
    assert runtime.signature().inputs[0].shape == (-1, 2)
    np.testing.assert_array_equal(runtime.infer({"x": np.ones((1, 2))})["y"], [[2.5, 2.5]])
    declared = [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}]
    with pytest.raises(ModelLoadError, match=r"input 'x' datatype: expected FP64"):
        load_runtime("python", path, inputs=declared)


def test_a_duck_typed_class_with_list_outputs(tmp_path: Path) -> None:
    path = model_py(
        tmp_path,
        """
        class Doubler:
            def __init__(self):
                self.loaded = False

            def load(self):
                self.loaded = True

            def infer(self, inputs):
                return {"y": [v * 2 for v in inputs["x"].tolist()]}
        """,
    )
    out = load_runtime("python", path, **LINEAR_IO).infer({"x": np.array([1.5, 2], np.float32)})
    assert out["y"].dtype == np.float32
    np.testing.assert_array_equal(out["y"], [3, 4])


def test_several_classes_need_a_class_name(tmp_path: Path) -> None:
    source = """
        from inferd.runtimes.python import PythonModel

        class Add(PythonModel):
            def infer(self, inputs):
                return {"y": inputs["x"] + 1}

        class Sub(PythonModel):
            def infer(self, inputs):
                return {"y": inputs["x"] - 1}
        """
    path = model_py(tmp_path, source)
    with pytest.raises(ModelLoadError, match=r"found \['Add', 'Sub'\]; set parameters\.class_name"):
        load_runtime("python", path, **LINEAR_IO)
    runtime = load_runtime("python", path, parameters={"class_name": "Sub"}, **LINEAR_IO)
    np.testing.assert_array_equal(runtime.infer({"x": np.ones(1, np.float32)})["y"], [0])
    with pytest.raises(ModelLoadError, match=r"no class named 'Mul' \(classes: \['Add', 'Sub'\]\)"):
        load_runtime("python", path, parameters={"class_name": "Mul"}, **LINEAR_IO)
    with pytest.raises(ConfigError, match=r"parameters\.class_name"):
        load_runtime("python", path, parameters={"class_name": 3}, **LINEAR_IO)


def test_no_model_class_at_all(tmp_path: Path) -> None:
    path = model_py(tmp_path, "VALUE = 1\n")
    with pytest.raises(ModelLoadError, match=r"expected one model class.*found \[\]"):
        load_runtime("python", path, **LINEAR_IO)


def test_the_signature_must_be_declared(linear_model: Callable[[str], Path]) -> None:
    with pytest.raises(ModelLoadError, match=r"model\.yaml must declare inputs and outputs"):
        load_runtime("python", linear_model("python"))


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("def broken(:\n    pass\n", "import failed: SyntaxError"),
        ("import not_a_module_anywhere\n", "ModuleNotFoundError"),
        (
            "from inferd.runtimes.python import PythonModel\n\n"
            "class Bad(PythonModel):\n"
            "    def load(self):\n"
            "        raise RuntimeError('weights missing')\n\n"
            "    def infer(self, inputs):\n"
            "        return inputs\n",
            "load() failed: RuntimeError: weights missing (model.py line 5)",
        ),
    ],
)
def test_errors_name_the_file_and_line(tmp_path: Path, source: str, fragment: str) -> None:
    path = model_py(tmp_path, source)
    before = set(sys.modules)
    with pytest.raises(ModelLoadError) as info:
        load_runtime("python", path, **LINEAR_IO)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)
    assert not [name for name in set(sys.modules) - before if name.startswith("inferd_model")]


def test_bad_outputs_fail_the_call(tmp_path: Path) -> None:
    path = model_py(
        tmp_path,
        """
        from inferd.runtimes.python import PythonModel

        class Wrong(PythonModel):
            def infer(self, inputs):
                return {"z": inputs["x"]} if inputs["x"][0] > 0 else [inputs["x"]]
        """,
    )
    runtime = load_runtime("python", path, **LINEAR_IO)
    with pytest.raises(KeyError, match=r"returned no \['y'\]"):
        runtime.infer({"x": np.ones(1, np.float32)})
    with pytest.raises(TypeError, match="returned list"):
        runtime.infer({"x": np.zeros(1, np.float32)})


def test_two_model_py_files_live_side_by_side(tmp_path: Path) -> None:
    template = """
        from inferd.runtimes.python import PythonModel

        OFFSET = {offset}

        class Shift(PythonModel):
            def infer(self, inputs):
                return {{"y": inputs["x"] + OFFSET}}
        """
    first = load_runtime("python", model_py(tmp_path, template.format(offset=1), 1), **LINEAR_IO)
    second = load_runtime("python", model_py(tmp_path, template.format(offset=10), 2), **LINEAR_IO)
    x = {"x": np.zeros(1, np.float32)}
    assert first.infer(x)["y"].tolist() == [1]
    assert second.infer(x)["y"].tolist() == [10]


def test_unload_calls_the_class_and_forgets_the_module(tmp_path: Path) -> None:
    path = model_py(
        tmp_path,
        """
        from inferd.runtimes.python import PythonModel

        UNLOADED = []

        class Tracked(PythonModel):
            def load(self):
                self.device = "cpu"

            def infer(self, inputs):
                return {"y": inputs["x"]}

            def unload(self):
                UNLOADED.append(True)
        """,
    )
    before = set(sys.modules)
    runtime = load_runtime("python", path, **LINEAR_IO)
    (module_name,) = [n for n in set(sys.modules) - before if n.startswith("inferd_model_m_")]
    module = sys.modules[module_name]
    runtime.unload()
    assert module.UNLOADED == [True]
    assert module_name not in sys.modules
    assert runtime.memory_bytes() == 0
    with pytest.raises(ModelNotReady):
        runtime.infer({"x": np.ones(1, np.float32)})


def test_missing_model_py(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"not found, expected a model\.py file"):
        load_runtime("python", tmp_path / "1" / "model.py", **LINEAR_IO)


def test_the_documented_example_works(tmp_path: Path) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "runtimes.md").read_text()

    def block(caption: str, language: str) -> str:
        match = re.search(rf"`{re.escape(caption)}`:\n\n```{language}\n(.*?)```", doc, re.S)
        assert match is not None, f"docs/runtimes.md lost the {caption} example"
        return match.group(1)

    words = re.search(r"`models/sentiment/1/words\.json`: `(.*?)`", doc)
    assert words is not None
    path = model_py(tmp_path, block("models/sentiment/1/model.py", "python"))
    (path.parent / "words.json").write_text(words.group(1))
    fields = yaml.safe_load(block("models/sentiment/model.yaml", "yaml"))
    runtime = load_runtime(**{**fields, "artifact": path})
    runtime.warmup([1, 4])
    out = runtime.infer({"text": np.array([b"a great day", b"awful"], dtype=np.object_)})
    assert out["label"].tolist() == [b"positive", b"negative"]
    assert out["score"].dtype == np.float32
