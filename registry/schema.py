"""Input and output schemas of a model, read from the model itself and its reference data.

Feature names come from, in order: the estimator's ``feature_names_in_``, the reference
data's columns, the ONNX graph (one input per feature, or ``x0…x{d-1}`` for one ``[n, d]``
input), the estimator's ``n_features_in_`` (``x0…``). Dtypes and categories come from the
reference data when there is some, else the ONNX graph, else ``float64`` (what scikit-learn
computes in).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.errors import InvalidReference, UnsupportedArtifact
from registry.model import Feature, InputSchema, OutputSchema
from registry.reference import categories, numpy_dtype_name

if TYPE_CHECKING:
    import polars as pl

_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 8: "object",
                9: "bool", 10: "float16", 11: "float64"}  # fmt: skip
_CLASS_ATTRS = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")


def to_python(value: Any) -> Any:
    """A JSON-friendly Python value for a numpy scalar (class labels, params).

    >>> import numpy as np
    >>> to_python(np.int64(3)), to_python(np.str_("a"))
    (3, 'a')
    """
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def onnx_inputs(model: Any) -> list[tuple[str, str, list[int | None]]]:
    """(name, dtype, shape) of each real graph input (initializers excluded)."""
    initializers = {init.name for init in model.graph.initializer}
    out = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        out.append((value.name, _ONNX_DTYPES.get(tensor.elem_type, "float32"), shape))
    return out


def onnx_classes(model: Any) -> list[Any] | None:
    """Class labels stored in the graph's classifier/ZipMap nodes, if any."""
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name in _CLASS_ATTRS:
                if attr.strings:
                    return [s.decode() for s in attr.strings]
                return list(attr.ints)
    return None


def _onnx_feature_names(model: Any) -> tuple[list[str], dict[str, str]]:
    inputs = onnx_inputs(model)
    if len(inputs) > 1:
        return [name for name, _, _ in inputs], {name: dtype for name, dtype, _ in inputs}
    name, dtype, shape = inputs[0]
    width = shape[-1] if len(shape) == 2 else (1 if len(shape) == 1 else None)
    if width is None:
        raise UnsupportedArtifact(
            f"ONNX input {name!r} has shape {shape}: cannot tell the number of features; "
            "pass reference data whose columns name them"
        )
    names = [f"x{i}" for i in range(width)]
    return names, dict.fromkeys(names, dtype)


def feature_names(
    *, estimator: Any = None, onnx_model: Any = None, reference: pl.DataFrame | None = None
) -> list[str]:
    """The ordered input feature names (see the module docstring for the precedence)."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    expected: int | None = getattr(estimator, "n_features_in_", None)
    if onnx_model is not None:
        if len(onnx_inputs(onnx_model)) > 1:
            return _onnx_feature_names(onnx_model)[0]
        try:
            expected = len(_onnx_feature_names(onnx_model)[0])
        except UnsupportedArtifact:
            if reference is None:
                raise
            expected = None  # the graph does not say: trust the reference's columns
    if reference is not None:
        if expected is not None and reference.width < expected:
            raise InvalidReference(
                f"reference: the model takes {expected} features, the reference has only "
                f"{reference.width} columns"
            )
        return list(reference.columns[: expected or reference.width])
    if expected is None:
        raise UnsupportedArtifact("cannot tell the model's inputs: it has no n_features_in_")
    return [f"x{i}" for i in range(int(expected))]


def input_schema(
    names: list[str], *, onnx_model: Any = None, reference: pl.DataFrame | None = None
) -> InputSchema:
    graph_dtypes: dict[str, str] = {}
    if onnx_model is not None:
        inputs = onnx_inputs(onnx_model)
        if len(inputs) > 1:
            graph_dtypes = {name: dtype for name, dtype, _ in inputs}
        else:
            graph_dtypes = dict.fromkeys(names, inputs[0][1])
    features = []
    for name in names:
        if reference is not None and name in reference.columns:
            column = reference[name]
            values = categories(column)
            if values is not None:
                check_categorical(name, values)
            features.append(Feature(name, numpy_dtype_name(column.dtype), values))
        else:
            features.append(Feature(name, graph_dtypes.get(name, "float64")))
    return InputSchema(features)


def check_categorical(name: str, values: list[Any]) -> None:
    """Refuse a reference column of strings that are all numbers: the schema would make the
    feature categorical (each distinct number a category), and every real request sending
    the number would then fail with 400.

    >>> check_categorical("plan", ["basic", "pro"])
    >>> check_categorical("age", ["31", "42.5"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    registry.errors.InvalidReference: reference column 'age': numbers stored as strings ...
    """
    if values and all(_is_number(v) for v in values):
        raise InvalidReference(
            f"reference column {name!r}: numbers stored as strings (e.g. {values[0]!r}); store "
            "the column as a number type, or it would become a categorical input"
        )


def _is_number(value: object) -> bool:
    try:
        float(str(value))
    except ValueError:
        return False
    return True


def output_schema(*, estimator: Any = None, onnx_model: Any = None) -> OutputSchema:
    if estimator is not None:
        from sklearn.base import is_classifier, is_regressor

        if is_classifier(estimator):
            classes = getattr(estimator, "classes_", None)
            labels = [to_python(c) for c in classes] if classes is not None else None
            return OutputSchema("classification", labels)
        if is_regressor(estimator):
            return OutputSchema("regression")
        raise UnsupportedArtifact(
            f"{type(estimator).__name__}: expected a classifier or a regressor "
            "(a transformer or clusterer cannot be served)"
        )
    classes = onnx_classes(onnx_model)
    if classes is not None:
        return OutputSchema("classification", classes)
    outputs = onnx_model.graph.output
    if len(outputs) >= 2 or any(o.type.tensor_type.elem_type in (7, 8) for o in outputs):
        return OutputSchema("classification")
    return OutputSchema("regression")
