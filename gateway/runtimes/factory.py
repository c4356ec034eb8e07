"""``compile_model``: a ``Runtime`` for a model handed over (an estimator or ONNX bytes).

Runtimes never see the registry: ``gateway.loading`` reads a registered version and hands
its artifact here."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gateway.runtimes.errors import UnsupportedModel
from gateway.runtimes.onnx_backend import OnnxRuntime
from gateway.runtimes.sklearn_backend import SklearnRuntime

if TYPE_CHECKING:
    from gateway.runtimes.base import Runtime

logger = logging.getLogger(__name__)

BACKENDS = ("numba", "onnx", "sklearn")


def compile_model(
    model: Any,
    backend: str = "numba",
    *,
    fallback: bool = False,
    **options: Any,
) -> Runtime:
    """Build a ``Runtime`` for a fitted scikit-learn estimator (or ONNX bytes for ``onnx``).

    ``backend``: ``"numba"`` (compiled kernels; ``options``: ``parallel_rows``), ``"onnx"``
    (an estimator is exported with skl2onnx first; ``options``: ``threads``,
    ``execution_mode``, ``providers``, ``classes``, ``allows_nan``) or ``"sklearn"``.
    With ``fallback=True`` a model the backend cannot compile is served by ``sklearn``
    with a logged warning; otherwise ``UnsupportedModel`` propagates.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    try:
        if backend == "numba":
            if isinstance(model, bytes | bytearray):
                raise UnsupportedModel(
                    model,
                    backend="numba",
                    reason="ONNX bytes need the onnx backend",
                    supported=("fitted scikit-learn estimators",),
                )
            from gateway.runtimes.numba.compile import compile_numba

            return compile_numba(model, **options)
        if backend == "onnx":
            return _compile_onnx(model, **options)
    except UnsupportedModel as exc:
        if not fallback or isinstance(model, bytes | bytearray):
            raise
        logger.warning("%s; serving it with the sklearn backend instead", exc)
    return SklearnRuntime(model)


def _compile_onnx(model: Any, **options: Any) -> OnnxRuntime:
    if isinstance(model, bytes | bytearray):
        return OnnxRuntime(bytes(model), **options)
    # an estimator: converted with the same skl2onnx export that registration uses (a pure
    # function of the estimator; the registry itself is not involved)
    from registry.onnx_export import OnnxExportError, export_onnx

    try:
        data = export_onnx(model)
    except OnnxExportError as exc:
        raise UnsupportedModel(
            model, backend="onnx", reason=str(exc), supported=("what skl2onnx converts",)
        ) from exc
    options.setdefault("classes", getattr(model, "classes_", None))
    options.setdefault("has_proba", hasattr(model, "predict_proba"))
    return OnnxRuntime(data, **options)
