"""What an explanation costs next to an inference of the same rows, in one run.

    .venv/bin/python bench/explain.py [--repeats 5]

Prints, per model, the median seconds of ``runtime.infer`` and of the explanation of the
same rows through ``inferd.explain`` (in-process, no HTTP), and their ratio. Models: an
XGBoost classifier (exact TreeSHAP, 1000 rows x 6 features, 3 classes) and the example
``mlp`` (ONNX, KernelSHAP with the default budget, 1 row x 256 features).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures.models import build_xgboost_classifier, classification_data, load_runtime

from inferd.config import parse_model_config
from inferd.explain import Explanations
from inferd.runtimes import Runtime
from inferd.serving.examples import build_mlp_onnx
from inferd.serving.manager import ModelVersion, VersionState
from inferd.types import InferenceRequest


def median_s(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(label: str, runtime: Runtime, platform: str, x: np.ndarray, repeats: int) -> None:
    config = parse_model_config({"platform": platform}, "bench", "m")
    version = ModelVersion("m", 1, config, None, state=VersionState.READY, runtime=runtime,
                           signature=runtime.signature())  # fmt: skip
    service = Explanations()
    request = InferenceRequest("m", None, {"x": x})
    infer = median_s(lambda: runtime.infer({"x": x}), repeats)
    explain = median_s(lambda: asyncio.run(service.explain(request, version)), repeats)
    print(f"{label:<40} infer {infer * 1e3:9.2f} ms  explain {explain * 1e3:9.2f} ms  "
          f"ratio {explain / infer:8.1f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        x, y = classification_data(rows=1000)
        build_xgboost_classifier(root / "xgb" / "model.json", x, y, trees=50)
        xgb = load_runtime("xgboost", root / "xgb" / "model.json")
        measure("xgboost 1000 rows (TreeSHAP, exact)", xgb, "xgboost", x.astype(np.float32),
                repeats)  # fmt: skip
        build_mlp_onnx(root / "mlp" / "model.onnx")
        mlp = load_runtime("onnx", root / "mlp" / "model.onnx")
        row = np.random.default_rng(0).standard_normal((1, 256)).astype(np.float32)
        measure("mlp 1 row (KernelSHAP, 512 coalitions)", mlp, "onnx", row, repeats)


if __name__ == "__main__":
    main()
