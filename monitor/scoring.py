"""Scoring the reference data with the registered model, for the predictions' profile."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from monitor.references import RegistryReader


def score_reference(
    registry: RegistryReader, mv: Any, reference: Any, feature_names: list[str]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Return ``(predictions, probabilities or None)`` of ``mv`` on the reference (a pyarrow
    Table)."""
    import polars as pl  # this fallback only: versions registered without stored outputs

    model = registry.load_model(mv)
    frame = pl.from_arrow(reference).select(feature_names)  # type: ignore[union-attr]
    numeric = all(dt.is_numeric() for dt in frame.dtypes)
    if isinstance(model, bytes | bytearray):
        return _score_onnx(bytes(model), frame.to_numpy().astype(np.float32))
    # mixed frames go in as an object array: pipelines that select columns by position work
    x: Any = frame.to_numpy().astype(np.float32) if numeric else frame.to_numpy()
    with warnings.catch_warnings():
        # the columns are in the manifest's feature order, which is the model's own: an
        # array is what it gets in serving too
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        return _score_estimator(model, mv, x)


def _score_estimator(model: Any, mv: Any, x: Any) -> tuple[np.ndarray, np.ndarray | None]:
    if hasattr(model, "predict_proba") and mv.output_schema.task == "classification":
        proba = np.asarray(getattr(model, "predict_proba")(x), dtype=np.float64)  # noqa: B009
        classes = list(getattr(model, "classes_", range(proba.shape[1])))
        pred = np.asarray([classes[i] for i in np.argmax(proba, axis=1)], dtype=object)
        return pred, proba
    predict = getattr(model, "predict")  # noqa: B009 - an estimator of any kind
    return np.asarray(predict(x)), None


def _score_onnx(model: bytes, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs = session.run(None, {name: x})
    pred = np.asarray(outputs[0]).reshape(len(x), -1)[:, 0]
    proba = None
    for out in outputs[1:]:
        if isinstance(out, list) and out and isinstance(out[0], dict):  # ZipMap output
            keys = list(out[0].keys())
            proba = np.array([[row[k] for k in keys] for row in out], dtype=np.float64)
        elif isinstance(out, np.ndarray) and out.ndim == 2:
            proba = out.astype(np.float64)
    return pred, proba
