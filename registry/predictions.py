"""The model's outputs on its reference sample, stored at registration for the monitor.

The monitor compares the predictions in the log with these (prediction drift). Scoring the
reference here, where the estimator is already in hand, means the monitor never has to
deserialize a model artifact (no skops/scikit-learn import, ~1 s and ~120 MiB per process)
and the cost is paid once per version, on a sample.

The columns are the ones the gateway logs (``registry.logschema``): ``prediction`` (String,
the label rendered with ``str()``, for a classifier; Float64 for a regressor) and, for a
classifier with ``predict_proba``, one Float64 ``proba_<class>`` column per class in
``classes_`` order. Inputs are given as the gateway gives them: the feature columns in
manifest order, as a float32 array when all are numeric (an object array otherwise).
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from registry import logschema

if TYPE_CHECKING:
    import polars as pl

    from registry.model import OutputSchema

FILE_NAME = "reference_predictions.parquet"
PREDICTION = "prediction"


def _inputs(reference: pl.DataFrame, feature_names: list[str]) -> Any:
    frame = reference.select(feature_names)
    if all(dtype.is_numeric() for dtype in frame.dtypes):
        return frame.to_numpy().astype(np.float32)
    # mixed frames go in as an object array: pipelines that select columns by position work
    return frame.to_numpy()


def score(
    estimator: Any, reference: pl.DataFrame, feature_names: list[str], output: OutputSchema
) -> pl.DataFrame:
    """The estimator's outputs on ``reference``, in the log's columns (see the module doc).

    >>> from sklearn.linear_model import LinearRegression
    >>> from registry.model import OutputSchema
    >>> import polars as pl
    >>> ref = pl.DataFrame({"a": [0.0, 1.0, 2.0]})
    >>> est = LinearRegression().fit(ref.to_numpy(), [1.0, 3.0, 5.0])
    >>> score(est, ref, ["a"], OutputSchema("regression"))["prediction"].round(6).to_list()
    [1.0, 3.0, 5.0]
    """
    import polars as pl

    x = _inputs(reference, feature_names)
    classifier = output.task == "classification"
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # the columns are in the manifest's feature order, which is the model's own: an
        # array is what it gets in serving too
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        predict = np.asarray(estimator.predict(x))
        proba = None
        if classifier and output.classes is not None and hasattr(estimator, "predict_proba"):
            proba = np.asarray(estimator.predict_proba(x), dtype=np.float64)
    columns: list[pl.Series] = []
    if classifier:
        columns.append(pl.Series(PREDICTION, [str(v) for v in predict.tolist()], pl.String))
    else:
        columns.append(pl.Series(PREDICTION, predict.astype(np.float64).reshape(-1), pl.Float64))
    if proba is not None:
        classes = output.classes or []
        if proba.ndim != 2 or proba.shape[1] != len(classes):
            raise ValueError(
                f"predict_proba returned shape {proba.shape}, expected ({len(x)}, {len(classes)})"
            )
        for j, label in enumerate(classes):
            columns.append(pl.Series(logschema.proba_column(label), proba[:, j], pl.Float64))
    return pl.DataFrame(columns)


class OnnxEstimator:
    """An ONNX model's ``predict``/``predict_proba``, for :func:`score`, read as the gateway's
    ONNX runtime reads it: outputs by name (``label``/``probabilities``, or ``predict``/
    ``predict_proba``), else by position (label first, scores second: a ``[n, k]`` tensor or
    a ZipMap sequence of maps, in class order)."""

    def __init__(self, model: bytes) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0]
        names = [o.name for o in self.session.get_outputs()]
        self._label, self._scores = names[0], names[1] if len(names) > 1 else None
        for label, scores in (("label", "probabilities"), ("predict", "predict_proba")):
            if label in names:
                self._label, self._scores = label, scores if scores in names else None
                break

    def _run(self, name: str, x: Any) -> Any:
        dtype = np.float64 if "double" in str(self._input.type) else np.float32
        return self.session.run([name], {self._input.name: np.asarray(x, dtype=dtype)})[0]

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(self._run(self._label, x)).reshape(len(x))

    def predict_proba(self, x: Any) -> np.ndarray:
        if self._scores is None:
            raise ValueError("this ONNX model has no score output")
        scores = self._run(self._scores, x)
        if isinstance(scores, list):  # ZipMap: one {class: probability} per row
            return np.array([list(row.values()) for row in scores], dtype=np.float64)
        return np.asarray(scores, dtype=np.float64)


def to_parquet(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


def from_parquet(data: bytes) -> pl.DataFrame:
    import polars as pl

    return pl.read_parquet(io.BytesIO(data))
