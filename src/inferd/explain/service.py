"""Explanations of served model versions: the explainer per version, the checks, the budget.

The explainer of a version is chosen once, on first use, and kept while the version stays
loaded with the same runtime:

* XGBoost and LightGBM: the booster's own TreeSHAP (exact, the margin).
* scikit-learn trees and linear models: ``shap`` (exact), when the ``explain`` extra is
  installed.
* anything else with one numeric ``[rows, features]`` input and a floating-point output:
  KernelSHAP on that output (:mod:`inferd.explain.kernel`), within :class:`ExplainLimits`.

Explanations run in a worker thread, a bounded number at once; the request's rows are
checked against the limit of the chosen method before any work starts.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

import numpy as np

from inferd.errors import FrameworkMissing, InvalidInput, ModelNotFound
from inferd.explain.base import Explainer, ExplainLimits, Explanation, NotExplainable
from inferd.explain.boosters import LightGBMExplainer, XGBoostExplainer
from inferd.explain.kernel import KernelExplainer, Predict
from inferd.explain.reference import background, kernel_output, seed, tabular_input
from inferd.explain.sklearn import sklearn_explainer
from inferd.preprocess import model_inputs
from inferd.runtimes.base import Runtime, import_framework
from inferd.runtimes.lightgbm import LightGBMRuntime
from inferd.runtimes.sklearn import SklearnRuntime
from inferd.runtimes.xgboost import XGBoostRuntime
from inferd.serving.dataplane import DataPlane
from inferd.serving.manager import ModelVersion
from inferd.types import InferenceRequest, InferenceResponse, TensorSpec

CHUNK_ROWS = 4096  # rows per model call when KernelSHAP evaluates its coalitions


class Explanations:
    """Explains requests on loaded versions (``/explain`` and ``explain: true``).

    Args:
        limits: the budget of one explanation and how many run at once.
    """

    def __init__(self, limits: ExplainLimits | None = None) -> None:
        self.limits = limits or ExplainLimits()
        self._slots = asyncio.Semaphore(self.limits.concurrency)
        self._native: weakref.WeakKeyDictionary[ModelVersion, tuple[Runtime, Explainer | None]]
        self._native = weakref.WeakKeyDictionary()

    async def answer(self, dataplane: DataPlane, request: InferenceRequest) -> InferenceResponse:
        """Explain ``request`` on the version it names (the default one when it names none;
        experiments do not route explanations), loading a registered version on demand.

        Raises:
            InferdError: ModelNotFound, ModelNotReady, NotExplainable, InvalidInput.
        """
        name, wanted = request.model_name, request.model_version
        try:
            version = dataplane.manager.get(name, wanted)
        except ModelNotFound:
            if dataplane.control is None:
                raise
            version = await dataplane.control.load_on_demand(name, wanted)
        return await self.explain(request, version)

    async def explain(self, request: InferenceRequest, version: ModelVersion) -> InferenceResponse:
        """The attributions of the request's rows on ``version``.

        Raises:
            NotExplainable: the model has no explainer and no fallback applies.
            InvalidInput: a bad input, too many rows, or a bad ``explain_*`` parameter.
        """
        start = time.perf_counter()
        runtime, signature = version.runtime, version.signature
        if runtime is None or signature is None:
            raise NotExplainable(version.name, version.label, "a loaded version", version.state)
        spec = tabular_input(version.name, version.label, signature)
        # Declared preprocessing: attributions are over the model's features, after it.
        x = model_inputs(request, signature, version.preprocessor)[spec.name]
        if len(x) == 0:  # nothing to explain, and no shape to explain it in
            raise InvalidInput(f"input '{spec.name}'", "at least one row", "0 rows")
        x = x.reshape(len(x), -1)
        async with self._slots:
            explainer = await asyncio.to_thread(self._explainer, version, runtime, request)
            reference = background(request.parameters, x, self.limits.max_background)
            self._check_budget(explainer, spec.name, x, reference)
            found = await asyncio.to_thread(
                explainer.explain, x, reference, seed(request.parameters)
            )
        return _response(version, request, found, start)

    def _explainer(
        self, version: ModelVersion, runtime: Runtime, request: InferenceRequest
    ) -> Explainer:
        cached = self._native.get(version)
        if cached is None or cached[0] is not runtime:
            cached = (runtime, _native_explainer(runtime))
            self._native[version] = cached
        if cached[1] is not None and "explain_output" not in request.parameters:
            return cached[1]
        signature = version.signature
        assert signature is not None  # checked by the caller
        name = kernel_output(version.name, version.label, signature, request.parameters)
        predict = _predict(runtime, signature.inputs[0], name)
        return KernelExplainer(predict, name, self.limits.kernel_samples)

    def _check_budget(
        self, explainer: Explainer, name: str, x: np.ndarray, reference: np.ndarray | None
    ) -> None:
        limits = self.limits
        most = limits.max_rows if explainer.exact else limits.max_kernel_rows
        if len(x) > most:
            raise InvalidInput(
                f"input '{name}'", f"at most {most} rows per {explainer.method} explanation",
                f"{len(x)} rows",
            )  # fmt: skip
        if isinstance(explainer, KernelExplainer):
            n_reference = 1 if reference is None else len(reference)
            cost = len(x) * (explainer.coalitions(x.shape[1]) * n_reference + 1) + n_reference
            if cost > limits.max_evaluations:
                raise InvalidInput(
                    f"input '{name}'",
                    f"at most {limits.max_evaluations} model rows evaluated by KernelSHAP "
                    "(rows x coalitions x baseline rows); send fewer rows or baseline rows",
                    f"{cost}",
                )


def _native_explainer(runtime: Runtime) -> Explainer | None:
    """The framework's exact explainer for ``runtime``'s model, or None (kernel fallback)."""
    model: Any = getattr(runtime, "model", None)
    if isinstance(runtime, XGBoostRuntime):
        return XGBoostExplainer(model, import_framework("xgboost", "xgboost", "xgboost"))
    if isinstance(runtime, LightGBMRuntime):
        return LightGBMExplainer(model)
    if isinstance(runtime, SklearnRuntime):
        try:
            shap = import_framework("shap", "explanations", "explain")
        except FrameworkMissing:
            return None  # without shap, scikit-learn models take the kernel fallback
        return sklearn_explainer(model, shap)
    return None


def _predict(runtime: Runtime, spec: TensorSpec, output: str) -> Predict:
    """The runtime's ``output`` for a feature matrix, called directly in chunks (the
    explanation already runs in a worker thread; the batcher's queue is for requests)."""

    def predict(rows: np.ndarray) -> np.ndarray:
        parts = []
        for begin in range(0, len(rows), CHUNK_ROWS):
            chunk = rows[begin : begin + CHUNK_ROWS].astype(spec.dtype, copy=False)
            if len(spec.shape) == 1:  # a one-feature model declared with shape [-1]
                chunk = chunk.reshape(-1)
            parts.append(np.asarray(runtime.infer({spec.name: chunk})[output]))
        return np.concatenate(parts)

    return predict


def _response(
    version: ModelVersion, request: InferenceRequest, found: Explanation, start: float
) -> InferenceResponse:
    parameters: dict[str, Any] = {
        "explainer": found.method, "explained": found.explained, "exact": found.exact,
        **found.details,
    }  # fmt: skip
    return InferenceResponse(
        model_name=version.name,
        model_version=version.label,
        outputs={"attributions": found.attributions, "base_value": found.base_value},
        id=request.id,
        parameters=parameters,
        latency_ms=(time.perf_counter() - start) * 1000.0,
    )
