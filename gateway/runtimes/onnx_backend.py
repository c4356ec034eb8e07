"""``OnnxRuntime``: any ONNX classifier or regressor through onnxruntime.

Outputs map by name when present (``label``/``probabilities``, skl2onnx's names, or
``predict``/``predict_proba``), else by position: a classifier has a label output and a score
output (a ``[n, k]`` tensor or a ZipMap sequence of maps), a regressor one float output. A model
exported from an estimator without ``predict_proba`` (e.g. hinge-loss SGD) returns labels only.
ONNX models compute in float32: values agree with scikit-learn to float32 precision
(about 1e-6 relative), not bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gateway.runtimes.inputs import as_float32_rows

EXECUTION_MODES = ("sequential", "parallel")


class OnnxRuntime:
    """An onnxruntime ``InferenceSession`` behind the ``Runtime`` protocol (thread-safe; the
    session releases the GIL while it runs)."""

    backend = "onnx"

    def __init__(
        self,
        model: bytes,
        *,
        threads: int = 1,
        execution_mode: str = "sequential",
        providers: list[str] | None = None,
        classes: np.ndarray | list[Any] | None = None,
        allows_nan: bool = False,
        allows_inf: bool = False,
        n_features: int | None = None,
        has_proba: bool = True,
    ) -> None:
        import onnxruntime as ort

        if execution_mode not in EXECUTION_MODES:
            raise ValueError(
                f"execution_mode: expected one of {EXECUTION_MODES}, got {execution_mode!r}"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL
            if execution_mode == "parallel"
            else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider",) if p in available]
            providers.append("CPUExecutionProvider")
        self.session = ort.InferenceSession(model, sess_options=options, providers=providers)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"ONNX model: expected one input tensor, got {len(inputs)}")
        self._input = inputs[0].name
        self._input_dtype = np.float64 if inputs[0].type == "tensor(double)" else np.float32
        shape = inputs[0].shape
        width = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else n_features
        if width is None:
            raise ValueError(
                f"ONNX model input {self._input!r} has shape {shape}: pass n_features="
            )
        self.n_features = int(width)
        self.allows_nan = allows_nan
        self._allows_inf = allows_inf
        self._label, self._scores = _pick_outputs(self.session.get_outputs())
        self.task = "classification" if self._scores is not None else "regression"
        self._has_proba = has_proba
        self.classes = None if classes is None else np.asarray(classes)
        if self.task == "classification" and self.classes is None:
            self.classes = _classes_from_graph(model)

    def __repr__(self) -> str:
        return f"OnnxRuntime(n_features={self.n_features}, task={self.task})"

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        X = as_float32_rows(X, self.n_features)
        if X.shape[0] == 0:
            return self._empty()
        self._check_finite(X)
        feed = {self._input: X if self._input_dtype == np.float32 else X.astype(np.float64)}
        names = [self._label] + ([self._scores] if self._scores else [])
        results = self.session.run(names, feed)
        if self.task == "regression":
            return {"predict": np.asarray(results[0], dtype=np.float64).reshape(X.shape[0])}
        labels = np.asarray(results[0]).reshape(X.shape[0])
        proba = _scores_array(results[1], self.classes)
        if self.classes is None:
            self.classes = np.arange(proba.shape[1])
        out = {"predict": labels.astype(self.classes.dtype, copy=False)}
        if self._has_proba:
            out["predict_proba"] = proba
        return out

    def _check_finite(self, X: np.ndarray) -> None:
        if (self.allows_nan and self._allows_inf) or np.isfinite(X).all():
            return
        bad = np.zeros(X.shape, dtype=bool)
        if not self.allows_nan:
            bad |= np.isnan(X)
        if not self._allows_inf:
            bad |= np.isinf(X)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            what = "NaN" if np.isnan(X[row, col]) else "infinite"
            raise ValueError(
                f"input X: value at row {row}, column {col} is {what} and this ONNX model "
                f"accepts {'non-infinite' if self.allows_nan else 'finite'} values only"
            )

    def _empty(self) -> dict[str, np.ndarray]:
        if self.task == "regression":
            return {"predict": np.empty(0)}
        classes = self.classes if self.classes is not None else np.empty(0, dtype=np.int64)
        out = {"predict": classes[:0].copy()}
        if self._has_proba:
            out["predict_proba"] = np.empty((0, len(classes)))
        return out


def _pick_outputs(outputs: list[Any]) -> tuple[str, str | None]:
    names = [o.name for o in outputs]
    for label, scores in (("label", "probabilities"), ("predict", "predict_proba")):
        if label in names:
            return label, scores if scores in names else None
    if len(outputs) >= 2:
        return names[0], names[1]
    if len(outputs) == 1:
        return names[0], None
    raise ValueError("ONNX model has no outputs")


def _scores_array(scores: Any, classes: np.ndarray | None) -> np.ndarray:
    if isinstance(scores, list):  # ZipMap: one {class: probability} per row
        keys = list(classes) if classes is not None else list(scores[0].keys())
        return np.array([[row[k] for k in keys] for row in scores], dtype=np.float64)
    return np.asarray(scores, dtype=np.float64)


def _classes_from_graph(model: bytes) -> np.ndarray | None:
    """Class labels from an ai.onnx.ml classifier node (``classlabels_ints/strings``)."""
    import onnx

    graph = onnx.load_from_string(model).graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_ints" and attr.ints:
                return np.asarray(list(attr.ints), dtype=np.int64)
            if attr.name == "classlabels_strings" and attr.strings:
                return np.asarray([s.decode() for s in attr.strings])
    return None
