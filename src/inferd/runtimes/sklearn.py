"""scikit-learn estimators and pipelines: ``model.skops``, or a trusted pickle.

    Runtime (ABC)
    └── MeasuredRuntime
        └── TabularRuntime
            └── SklearnRuntime

Outputs: ``predict``, and ``predict_proba`` where the estimator has it. Reading a pickle or
joblib file runs whatever code it holds, so ``model.joblib`` and ``model.pkl`` load only with
``trust_pickle: true`` in model.yaml. The skops format (``skops.io.dump``) is safe and needs no
flag; types skops does not trust by default (tree node arrays, say) are listed in
``parameters.trusted_types`` after review.

scikit-learn and skops are an optional extra (``inferd[sklearn]``), imported on load.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from inferd.runtimes._tabular import TabularRuntime
from inferd.runtimes.base import import_framework

_PARAMETERS = ("trusted_types",)
_PICKLES = (".joblib", ".pkl", ".pickle")
_OUTPUTS = ("predict", "predict_proba")


class SklearnRuntime(TabularRuntime):
    """A fitted scikit-learn estimator or pipeline taking a numeric feature matrix.

    The input defaults to ``x``, FP64, ``[-1, n_features_in_]``; model.yaml may declare
    another name or datatype (values are converted to float64 for the estimator).
    """

    framework = "scikit-learn"

    def _prepare(self) -> None:
        import_framework("sklearn", "sklearn", "sklearn")
        self.check_parameters(_PARAMETERS)
        trusted = self.config.parameters.get("trusted_types", [])
        if not isinstance(trusted, list) or not all(isinstance(t, str) for t in trusted):
            raise self.config_error(
                "parameters.trusted_types",
                f"expected a list of type names like 'sklearn.tree._tree.Tree', got {trusted!r}",
            )
        self._trusted: list[str] = trusted

    def _read(self) -> Any:
        suffix = self.artifact.suffix
        if suffix in _PICKLES:
            model = self._read_pickle()
        elif suffix == ".skops":
            model = self._read_skops()
        else:
            raise self.load_error(
                f"{self.artifact}: unknown scikit-learn file type '{suffix}'; expected "
                "model.skops (or model.joblib / model.pkl with trust_pickle: true)"
            )
        if not callable(getattr(model, "predict", None)):
            raise self.load_error(
                f"{self.artifact}: holds a {type(model).__name__}, which has no predict(); "
                "expected a fitted scikit-learn estimator or pipeline"
            )
        return model

    def _read_skops(self) -> Any:
        skops_io = import_framework("skops.io", "sklearn", "sklearn")
        path = str(self.artifact)
        try:
            untrusted = list(skops_io.get_untrusted_types(file=path))
        except Exception as err:  # zipfile.BadZipFile, KeyError, JSON errors...
            raise self._corrupt("skops", err) from err
        refused = [name for name in untrusted if name not in self._trusted]
        if refused and not self.config.trust_pickle:
            raise self.load_error(
                f"{self.artifact}: holds types skops does not trust by default: {refused}; "
                "review them, then list them under parameters.trusted_types in model.yaml"
            )
        try:
            return skops_io.load(path, trusted=untrusted or None)
        except Exception as err:
            raise self._corrupt("skops", err) from err

    def _read_pickle(self) -> Any:
        if not self.config.trust_pickle:
            raise self.load_error(
                f"{self.artifact}: a {self.artifact.suffix} file is a pickle, and reading a "
                "pickle runs any code inside it; save the model with skops.io.dump as "
                "model.skops, or set trust_pickle: true in model.yaml if you trust its origin"
            )
        try:
            if self.artifact.suffix == ".joblib":
                joblib = import_framework("joblib", "sklearn", "sklearn")
                return joblib.load(self.artifact)
            with self.artifact.open("rb") as file:
                return pickle.load(file)  # only with trust_pickle, checked above
        except Exception as err:  # UnpicklingError, EOFError, missing classes...
            raise self._corrupt("pickle", err) from err

    def _corrupt(self, kind: str, err: Exception) -> Exception:
        detail = str(err).strip().splitlines()
        return self.load_error(
            f"{self.artifact}: not a loadable {kind} file ({type(err).__name__}: "
            f"{detail[0][:300] if detail else ''}); check that it was copied completely"
        )

    def _n_features(self, model: Any) -> int | None:
        count = getattr(model, "n_features_in_", None)
        return int(count) if isinstance(count, int | np.integer) else None

    def _output_names(self, model: Any) -> list[str]:
        # hasattr is False for methods the estimator disables (SVC without probability).
        return [name for name in _OUTPUTS if hasattr(model, name)]

    def predict(self, model: Any, x: np.ndarray, wanted: set[str]) -> dict[str, np.ndarray]:
        """``predict`` and/or ``predict_proba`` of the estimator."""
        return {name: np.asarray(getattr(model, name)(x)) for name in _OUTPUTS if name in wanted}
