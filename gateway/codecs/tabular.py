"""Table-shaped JSON values shared by KServe V1 and MLflow: rows, records or columns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from gateway.errors import BadRequest, too_deep

if TYPE_CHECKING:
    import numpy as np

    from gateway.schema import InputSpec

_decoder = msgspec.json.Decoder()


def decode_json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        value = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"{what}: invalid JSON: {exc}") from None
    except RecursionError:
        raise too_deep(what) from None
    if not isinstance(value, dict):
        raise BadRequest(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def table_matrix(value: Any, spec: InputSpec, field: str) -> np.ndarray:
    """``X`` from rows (lists), records (objects), columns (object of lists) or one record."""
    if isinstance(value, dict):
        if value and all(not isinstance(v, list | dict) for v in value.values()):
            return spec.from_records([value], field)  # a single record
        return spec.from_columns(value, field)
    if isinstance(value, list) and value:
        first = value[0]
        if isinstance(first, dict):
            return spec.from_records(value, field)
        if isinstance(first, list):
            return spec.from_rows(value, field)
        if spec.n_features == 1:
            return spec.from_rows([[v] for v in value], field)
        raise BadRequest(
            f"{field}: expected a list of rows of {spec.n_features} values (or of records), "
            f"got a list of scalars"
        )
    raise BadRequest(
        f"{field}: expected rows, records or columns, got "
        f"{'an empty list' if value == [] else type(value).__name__}"
    )
