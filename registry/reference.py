"""Reference data: the training-data sample stored next to a version for drift statistics.

Accepts a polars (or pandas) DataFrame, a 2-D array, or a CSV / Parquet path; stores it as
``reference.parquet`` with the model's feature columns first, in feature order (any other
columns, such as a label, follow them unchanged).

polars is imported where it is used: the monitor imports the registry to read references
with pyarrow and would otherwise carry polars (~30 MiB resident) for nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from registry.errors import InvalidReference

if TYPE_CHECKING:
    import polars as pl


def _read_file(path: Path) -> pl.DataFrame:
    import polars as pl

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pl.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(path)
    except FileNotFoundError as exc:
        raise InvalidReference(f"reference {path}: no such file") from exc
    except Exception as exc:  # noqa: BLE001 - polars raises several error kinds on bad files
        raise InvalidReference(f"reference {path}: cannot read it as {suffix[1:]}: {exc}") from exc
    raise InvalidReference(
        f"reference {path}: expected a .csv or .parquet file, got {suffix or 'no extension'!r}"
    )


def to_frame(reference: object, *, feature_names: list[str] | None) -> pl.DataFrame:
    """Reference data as a polars DataFrame; arrays get ``feature_names`` (else x0…) columns."""
    import polars as pl

    if isinstance(reference, (str, Path)):
        frame = _read_file(Path(reference).expanduser())
    elif isinstance(reference, pl.LazyFrame):
        frame = reference.collect()
    elif isinstance(reference, pl.DataFrame):
        frame = reference
    elif type(reference).__module__.startswith("pandas"):
        frame = pl.from_pandas(reference)  # type: ignore[arg-type]
    else:
        try:
            arr = np.asarray(reference)
        except (TypeError, ValueError) as exc:
            raise InvalidReference(f"reference: cannot use {type(reference).__name__}") from exc
        if arr.ndim != 2 or arr.dtype.kind not in "biuf":
            raise InvalidReference(
                f"reference: expected a 2-D numeric array, a DataFrame or a CSV/Parquet path, "
                f"got {type(reference).__name__} with shape {arr.shape} and dtype {arr.dtype}"
            )
        names = feature_names or [f"x{i}" for i in range(arr.shape[1])]
        if len(names) != arr.shape[1]:
            raise InvalidReference(
                f"reference: the model has {len(names)} features, the array has "
                f"{arr.shape[1]} columns"
            )
        frame = pl.DataFrame({n: arr[:, i] for i, n in enumerate(names)})
    if frame.height == 0:
        raise InvalidReference("reference: has no rows")
    return frame


def align(frame: pl.DataFrame, features: list[str]) -> pl.DataFrame:
    """Feature columns first, in order; refuses a reference that lacks one."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise InvalidReference(
            f"reference: lacks the model's feature column(s) {missing}; it has {frame.columns[:20]}"
        )
    rest = [c for c in frame.columns if c not in features]
    return frame.select([*features, *rest])


def to_parquet(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


def fingerprint(frame: pl.DataFrame) -> str:
    """sha256 of the data in a canonical form (names, dtypes, values; not the file bytes).

    >>> import polars as pl
    >>> a = pl.DataFrame({"x": [1.0, 2.0], "c": ["a", None]})
    >>> fingerprint(a) == fingerprint(a.clone()), fingerprint(a) == fingerprint(a.reverse())
    (True, False)
    """
    import polars as pl

    h = hashlib.sha256()
    header = [[name, str(dtype)] for name, dtype in frame.schema.items()]
    h.update(json.dumps(header).encode())
    for name in frame.columns:
        s = frame[name]
        h.update(b"\x00column\x00" + name.encode())
        h.update(np.packbits(s.is_null().to_numpy()).tobytes())
        if s.dtype.is_integer() or s.dtype == pl.Boolean:
            h.update(s.cast(pl.Int64).fill_null(0).to_numpy().astype("<i8").tobytes())
        elif s.dtype.is_float():
            h.update(s.cast(pl.Float64).fill_null(0.0).to_numpy().astype("<f8").tobytes())
        else:
            for value in s.cast(pl.String).to_list():
                raw = b"" if value is None else value.encode()
                h.update(len(raw).to_bytes(8, "little") + raw)
    return h.hexdigest()


def categories(series: pl.Series) -> list[Any] | None:
    """Sorted distinct non-null values of a string/categorical column; None for numbers."""
    import polars as pl

    if series.dtype in (pl.String, pl.Categorical) or isinstance(series.dtype, pl.Enum):
        return sorted(series.cast(pl.String).drop_nulls().unique().to_list())
    return None


def numpy_dtype_name(dtype: pl.DataType) -> str:
    """numpy's name for a polars column dtype (``object`` for strings and categories)."""
    import polars as pl

    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_numeric():
        return _NUMERIC.get(str(dtype), "float64")
    return "object"


_NUMERIC = {
    "Float32": "float32",
    "Float64": "float64",
    "Int8": "int8",
    "Int16": "int16",
    "Int32": "int32",
    "Int64": "int64",
    "UInt8": "uint8",
    "UInt16": "uint16",
    "UInt32": "uint32",
    "UInt64": "uint64",
}
