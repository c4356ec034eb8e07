"""What a loaded version takes and gives: turn decoded request values into ``float32[n, d]``.

Every protocol codec ends here, so validation (feature count and names, types, categories,
NaN/inf) happens once and the same way for OIP, KServe V1 and MLflow, before a request joins a
batch. Categorical features travel to the runtime as numbers: a feature with numeric categories
passes its value through (after checking it is allowed); a feature with string categories is sent
as the index of its category in the manifest's list (an ordinal code).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from gateway.errors import BadRequest

if TYPE_CHECKING:
    from collections.abc import Sequence

    from registry.model import Feature, OutputSchema

_NUMERIC_KINDS = "biuf"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class CategoryCodec:
    """Maps the allowed values of one categorical feature to the number the runtime gets."""

    def __init__(self, feature: Feature) -> None:
        categories = list(feature.categories or [])
        self.name = feature.name
        self.categories = categories
        self.numeric = bool(categories) and all(_is_number(c) for c in categories)
        self._code: dict[Any, float] = {}
        self.labels: dict[float, str] = {}  # runtime number -> category as logged
        for i, cat in enumerate(categories):
            code = float(cat) if self.numeric else float(i)
            self._code[cat] = code
            self._code.setdefault(str(cat), code)
            self.labels[code] = str(cat)
        self._allowed = np.array(sorted(self.labels), dtype=np.float64)

    def encode(self, values: Sequence[Any], field: str) -> np.ndarray:
        out = np.empty(len(values), dtype=np.float32)
        code = self._code
        for i, value in enumerate(values):
            key = value.decode() if isinstance(value, bytes) else value
            try:
                out[i] = code[key]
            except (KeyError, TypeError):
                shown = self.categories if len(self.categories) <= 20 else self.categories[:20]
                raise BadRequest(
                    f"{field}: feature {self.name!r} row {i}: expected one of the categories "
                    f"{shown}, got {value!r}"
                ) from None
        return out

    def check_numeric(self, column: np.ndarray, field: str) -> None:
        """Numbers sent for this feature must be allowed values (or codes of string ones)."""
        allowed = self._allowed if self.numeric else np.arange(len(self.categories))
        bad = ~np.isin(column, allowed)
        if bad.any():
            row = int(np.argmax(bad))
            raise BadRequest(
                f"{field}: feature {self.name!r} row {row}: expected one of "
                f"{self.categories[:20] if self.numeric else 'the category codes 0..'}"
                f"{'' if self.numeric else len(self.categories) - 1}, got {column[row]!r}"
            )


class InputSpec:
    """Ordered input features of one loaded version and how to build its ``X``."""

    def __init__(self, features: Sequence[Feature], *, allows_nan: bool) -> None:
        self.features = list(features)
        self.names = [f.name for f in self.features]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.n_features = len(self.names)
        self.allows_nan = allows_nan
        self.categorical: dict[int, CategoryCodec] = {
            i: CategoryCodec(f) for i, f in enumerate(self.features) if f.is_categorical
        }

    @property
    def all_numeric(self) -> bool:
        return not self.categorical

    def same_inputs(self, other: InputSpec) -> bool:
        return (
            self.names == other.names
            and all(
                other.categorical.get(i) is not None
                and other.categorical[i].categories == c.categories
                for i, c in self.categorical.items()
            )
            and len(self.categorical) == len(other.categorical)
        )

    # -- builders ---------------------------------------------------------------------------
    def from_matrix(self, values: np.ndarray, field: str) -> np.ndarray:
        """A numeric 2-D array ``[n, d]`` in feature order."""
        if values.ndim != 2 or values.shape[1] != self.n_features:
            raise BadRequest(
                f"{field}: expected shape [n, {self.n_features}] (one column per feature "
                f"{self._names_hint()}), got {list(values.shape)}"
            )
        if values.dtype == np.float32:
            X = np.ascontiguousarray(values)
        else:
            with np.errstate(over="ignore", invalid="ignore"):  # overflow -> inf, refused below
                X = np.ascontiguousarray(values, dtype=np.float32)
        for j, codec in self.categorical.items():
            codec.check_numeric(X[:, j], field)
        return self.checked(X, field)

    def from_rows(self, rows: Any, field: str) -> np.ndarray:
        """A list of rows, each a list of ``d`` values in feature order."""
        if not isinstance(rows, list) or not rows:
            raise BadRequest(f"{field}: expected a non-empty list of rows, got {_kind(rows)}")
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != self.n_features:
                got = f"{len(row)} values" if isinstance(row, list) else _kind(row)
                raise BadRequest(
                    f"{field}[{i}]: expected a row of {self.n_features} values "
                    f"{self._names_hint()}, got {got}"
                )
        if self.all_numeric:
            try:  # strict: numbers only (no strings, booleans or nulls) on the fast path
                arr = np.array(msgspec.convert(rows, list[list[float]]), dtype=np.float64)
            except msgspec.ValidationError:
                arr = None
            if arr is not None:
                with np.errstate(over="ignore", invalid="ignore"):
                    X = arr.astype(np.float32)
                return self.checked(X, field)
        columns = {name: [row[j] for row in rows] for j, name in enumerate(self.names)}
        return self.from_columns(columns, field)

    def from_records(self, records: Any, field: str) -> np.ndarray:
        """A list of ``{feature: value}`` objects."""
        if not isinstance(records, list) or not records:
            raise BadRequest(f"{field}: expected a non-empty list of records, got {_kind(records)}")
        columns: dict[str, list[Any]] = {name: [] for name in self.names}
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise BadRequest(
                    f"{field}[{i}]: expected an object of features, got {_kind(record)}"
                )
            if len(record) != self.n_features or any(k not in self.index for k in record):
                self._check_names(list(record), f"{field}[{i}]")
            for name in self.names:
                columns[name].append(record[name])
        return self.from_columns(columns, field)

    def from_columns(self, columns: dict[str, Any], field: str) -> np.ndarray:
        """One sequence (list or 1-D array) per feature, all of the same length."""
        self._check_names(list(columns), field)
        n = -1
        X: np.ndarray | None = None
        for j, name in enumerate(self.names):
            values = columns[name]
            if isinstance(values, np.ndarray):
                if values.ndim == 2 and values.shape[1] == 1:
                    values = values[:, 0]
                if values.ndim != 1:
                    raise BadRequest(
                        f"{field}: feature {name!r}: expected shape [n] or [n, 1], "
                        f"got {list(values.shape)}"
                    )
            elif not isinstance(values, list):
                raise BadRequest(f"{field}: feature {name!r}: expected a list, got {_kind(values)}")
            if n < 0:
                n = len(values)
                if n == 0:
                    raise BadRequest(f"{field}: feature {name!r}: expected at least 1 row, got 0")
                X = np.empty((n, self.n_features), dtype=np.float32)
            elif len(values) != n:
                raise BadRequest(
                    f"{field}: feature {name!r}: expected {n} rows like {self.names[0]!r}, "
                    f"got {len(values)}"
                )
            assert X is not None
            X[:, j] = self._column(j, values, field)
        assert X is not None
        return self.checked(X, field)

    # -- checks -----------------------------------------------------------------------------
    def checked(self, X: np.ndarray, field: str) -> np.ndarray:
        """Refuse NaN (unless the model takes missing values) and infinities."""
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise BadRequest(f"{field}: expected shape [n, {self.n_features}], got {list(X.shape)}")
        if X.shape[0] == 0:
            raise BadRequest(f"{field}: expected at least 1 row, got 0")
        if np.isfinite(X).all():
            return X
        bad = np.isinf(X) if self.allows_nan else ~np.isfinite(X)
        if bad.any():
            row, col = (int(v) for v in np.argwhere(bad)[0])
            rule = "finite values" if self.allows_nan else "finite values (this model refuses NaN)"
            raise BadRequest(
                f"{field}: feature {self.names[col]!r} row {row}: expected {rule}, "
                f"got {X[row, col]!r}"
            )
        return X

    def _column(self, j: int, values: Sequence[Any] | np.ndarray, field: str) -> np.ndarray:
        codec = self.categorical.get(j)
        name = self.names[j]
        if isinstance(values, np.ndarray) and values.dtype.kind in _NUMERIC_KINDS:
            with np.errstate(over="ignore", invalid="ignore"):
                col = values.astype(np.float32)
            if codec is not None:
                codec.check_numeric(col, field)
            return col
        if codec is not None:
            listed = values.tolist() if isinstance(values, np.ndarray) else values
            return codec.encode(listed, field)
        try:
            floats = msgspec.convert(values, list[float])
            with np.errstate(over="ignore", invalid="ignore"):
                return np.array(floats, dtype=np.float64).astype(np.float32)
        except msgspec.ValidationError:
            for i, value in enumerate(values):
                if value is None and self.allows_nan:
                    continue
                if not _is_number(value) and not isinstance(value, bool | np.number):
                    raise BadRequest(
                        f"{field}: feature {name!r} row {i}: expected a number, got {value!r}"
                    ) from None
            filled = [math.nan if v is None else v for v in values]
            with np.errstate(over="ignore", invalid="ignore"):
                return np.array(filled, dtype=np.float64).astype(np.float32)

    def _check_names(self, got: list[str], field: str) -> None:
        missing = [n for n in self.names if n not in got]
        unknown = [n for n in got if n not in self.index]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing {missing[:10]}")
            if unknown:
                parts.append(f"unknown {unknown[:10]}")
            raise BadRequest(
                f"{field}: expected the features {self._names_hint()}, got {', '.join(parts)}"
            )

    def _names_hint(self) -> str:
        if self.n_features <= 12:
            return str(self.names)
        return f"[{', '.join(map(repr, self.names[:6]))}, … {self.names[-1]!r}]"


class OutputSpec:
    """Names, OIP datatypes and shapes of a version's outputs.

    A classifier lists ``predict_proba`` only when its runtime gives probabilities
    (``has_proba``); one without (``LinearSVC``, ``RidgeClassifier``, hinge-loss SGD …)
    serves labels only.
    """

    def __init__(
        self, output_schema: OutputSchema, classes: np.ndarray | None, *, has_proba: bool = True
    ) -> None:
        self.task = output_schema.task
        if classes is None and output_schema.classes is not None:
            classes = np.asarray(output_schema.classes)
        self.classes = classes
        if self.task == "classification":
            kind = classes.dtype.kind if classes is not None else "O"
            label_type = {"b": "BOOL", "i": "INT64", "u": "INT64", "f": "FP64"}.get(kind, "BYTES")
            n_classes = len(classes) if classes is not None else -1
            self.datatypes = {"predict": label_type}
            self.shapes: dict[str, list[int]] = {"predict": [-1]}
            if has_proba:
                self.datatypes["predict_proba"] = "FP64"
                self.shapes["predict_proba"] = [-1, n_classes]
        else:
            self.datatypes = {"predict": "FP64"}
            self.shapes = {"predict": [-1]}
        self.names = list(self.datatypes)

    def check_requested(self, names: Sequence[str], field: str) -> None:
        for name in names:
            if name not in self.datatypes:
                raise BadRequest(f"{field}: unknown output {name!r}: expected one of {self.names}")


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return type(value).__name__
