"""Export fitted scikit-learn estimators to ONNX with skl2onnx (registry flavor ``onnx``)."""

from __future__ import annotations

import json
import warnings
from typing import Any


class OnnxExportError(ValueError):
    """skl2onnx cannot convert this estimator."""


def export_onnx(
    estimator: Any, *, n_features: int | None = None, feature_names: list[str] | None = None
) -> bytes:
    """Serialized ONNX model of ``estimator`` taking one float32 input ``X [n, n_features]``.

    Classifiers output ``label`` and ``probabilities`` as tensors (no ZipMap), regressors
    ``variable``. ``feature_names`` are stored in the model's metadata (``feature_names``, JSON).
    Raises ``OnnxExportError`` naming the estimator when skl2onnx cannot convert it.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    width = n_features if n_features is not None else getattr(estimator, "n_features_in_", None)
    if width is None:
        raise OnnxExportError(
            f"export_onnx: cannot tell the input width of {type(estimator).__name__}; "
            "pass n_features="
        )
    if feature_names is not None and len(feature_names) != width:
        raise OnnxExportError(
            f"export_onnx: {len(feature_names)} feature_names for {width} input columns"
        )
    for part in _parts(estimator):
        _refuse_known_bad(part)
    options: dict[int, dict[str, Any]] = {}
    for part in _parts(estimator):
        if hasattr(part, "classes_"):
            options[id(part)] = {"zipmap": False}
    try:
        with warnings.catch_warnings():
            # skl2onnx 1.20 hands protobuf booleans for int fields (missing-value flags)
            warnings.simplefilter("ignore", DeprecationWarning)
            onx = convert_sklearn(
                estimator,
                initial_types=[("X", FloatTensorType([None, int(width)]))],
                options=options,
            )
    except Exception as exc:  # skl2onnx raises many unrelated types  # noqa: BLE001
        raise OnnxExportError(
            f"export_onnx: skl2onnx cannot convert {type(estimator).__name__}: {exc}"
        ) from exc
    if feature_names is not None:
        entry = onx.metadata_props.add()
        entry.key = "feature_names"
        entry.value = json.dumps(list(feature_names))
    return bytes(onx.SerializeToString())


def _refuse_known_bad(part: Any) -> None:
    """skl2onnx 1.20 converts these without error but computes something else."""
    name = type(part).__name__
    if not name.startswith("HistGradientBoosting"):
        return
    is_categorical = getattr(part, "is_categorical_", None)
    if is_categorical is not None and bool(is_categorical.any()):
        raise OnnxExportError(
            f"export_onnx: {name} with categorical features is not converted correctly by "
            "skl2onnx (its categorical splits are dropped)"
        )
    link = type(getattr(part, "_loss", None)).__name__
    if name.endswith("Regressor") and getattr(part, "loss", "") in ("poisson", "gamma"):
        raise OnnxExportError(
            f"export_onnx: {name}(loss={part.loss!r}) is not converted correctly by skl2onnx "
            f"(the inverse link of {link} is not applied)"
        )


def _parts(estimator: Any) -> list[Any]:
    parts = [estimator]
    for _, step in getattr(estimator, "steps", []):
        parts.extend(_parts(step))
    for attr in ("estimators_",):
        members = getattr(estimator, attr, None)
        if isinstance(members, list):
            parts.extend(members)
    return parts
