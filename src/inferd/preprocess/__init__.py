"""Declared feature preprocessing: the ``preprocessing:`` block of ``model.yaml``.

spec.py (the block, validated), expr.py (safe expressions), compile.py (to numpy, once per
loaded version), apply.py (the same transform online, in batch jobs and in the bench).
See docs/preprocessing.md.
"""

from inferd.preprocess.apply import Preprocessor, model_inputs
from inferd.preprocess.compile import compile_preprocessing
from inferd.preprocess.spec import PreprocessingConfig

__all__ = ["PreprocessingConfig", "Preprocessor", "compile_preprocessing", "model_inputs"]
