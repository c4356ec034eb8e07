"""Inference runtimes: compiled (numba), ONNX Runtime and plain scikit-learn backends.

>>> from gateway.runtimes import compile_model, Runtime, UnsupportedModel

A runtime is compiled from a model handed to it; ``gateway.loading`` reads a registered
version from the registry and hands its artifact over.

Every backend implements ``Runtime`` (``base.py``): ``predict(X)`` takes float32 rows
``[n, n_features]`` and returns ``{"predict": (n,)}`` plus ``{"predict_proba": (n, k)}``
(float64) for classifiers that have ``predict_proba``. Labels are the class labels themselves,
with the dtype of scikit-learn's ``predict``; regression values are float64.

Inputs (``inputs.py``): float64, integer and bool arrays are converted to float32 (a finite
value beyond float32's range is refused); wrong ndim or column count, or a non-numeric dtype,
raise ``ValueError`` naming expected and received shapes; an empty batch returns empty outputs
of the right shapes. NaN is accepted exactly where scikit-learn accepts it (trees and forests
of scikit-learn >= 1.4, HistGradientBoosting, pipelines with a ``SimpleImputer`` or an encoder
that maps NaN), infinity only by HistGradientBoosting's numeric columns; elsewhere
``ValueError`` names the row and column. ``Runtime.allows_nan`` says which.

Agreement with scikit-learn: ``numba`` reproduces each estimator's arithmetic (float32
rounding of scalers included): tree models and linear models give identical labels and
probabilities within 1e-15, MLPs within 1e-6 (BLAS summation order); the label tie rule is
the mirrored estimator's own (first maximum, ``> 0`` for binary linear models and
HistGradientBoosting, ``>= 0`` for GradientBoosting, ``p > 0.5`` for MLPs; see
``numba/finish.py``). ``onnx`` computes in float32 (about 1e-6 relative) and refuses NaN and
infinity. ``sklearn`` is scikit-learn itself.
"""

from gateway.runtimes.base import Runtime
from gateway.runtimes.errors import UnsupportedModel
from gateway.runtimes.factory import BACKENDS, compile_model

__all__ = [
    "BACKENDS",
    "Runtime",
    "UnsupportedModel",
    "compile_model",
]
