"""MLflow scoring protocol (``POST /invocations``): JSON ``dataframe_split``,
``dataframe_records``, ``instances`` or ``inputs``, ``text/csv`` with a header row, or a Parquet
file (one column per feature); errors in MLflow's shape (``error_code``, ``message``)."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

import msgspec

from gateway.codecs.tabular import decode_json_object, table_matrix
from gateway.errors import BadRequest, UnsupportedMediaType

if TYPE_CHECKING:
    import numpy as np

    from gateway.schema import InputSpec, OutputSpec

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
PARQUET_TYPES = ("application/x-parquet", "application/vnd.apache.parquet", "application/parquet")
_encoder = msgspec.json.Encoder()


class MlflowPayload:
    def __init__(self, kind: str, value: Any) -> None:
        self.kind = kind
        self.value = value

    def to_matrix(self, inputs: InputSpec, outputs: OutputSpec) -> np.ndarray:
        if self.kind == "dataframe_split":
            return _split_matrix(self.value, inputs)
        if self.kind == "parquet":
            return inputs.from_columns(self.value, "parquet")
        if self.kind == "csv":
            header, rows = self.value
            return inputs.from_columns(
                {name: [row[j] for row in rows] for j, name in enumerate(header)}, "csv"
            )
        return table_matrix(self.value, inputs, self.kind)


def decode_request(body: bytes, content_type: str) -> MlflowPayload:
    media = content_type.split(";")[0].strip().lower()
    if media == "text/csv":
        return MlflowPayload("csv", _read_csv(body))
    if media in PARQUET_TYPES:
        return MlflowPayload("parquet", _read_parquet(body))
    if media not in ("application/json", ""):
        raise UnsupportedMediaType(
            f"header Content-Type: expected application/json, text/csv or "
            f"application/x-parquet, got {content_type!r}"
        )
    data = decode_json_object(body, "invocations request")
    kinds = [k for k in FORMATS if k in data]
    if len(kinds) != 1:
        raise BadRequest(
            f"invocations request: expected exactly one of {list(FORMATS)}, got keys {sorted(data)}"
        )
    return MlflowPayload(kinds[0], data[kinds[0]])


def _split_matrix(value: Any, inputs: InputSpec) -> np.ndarray:
    if not isinstance(value, dict) or "data" not in value:
        raise BadRequest(
            "dataframe_split: expected an object with 'data' (and 'columns'), "
            f"got {type(value).__name__}"
        )
    data = value["data"]
    columns = value.get("columns")
    if columns is None:
        return inputs.from_rows(data, "dataframe_split.data")
    if not isinstance(columns, list) or not isinstance(data, list):
        raise BadRequest("dataframe_split: expected 'columns' and 'data' to be lists")
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise BadRequest(
                f"dataframe_split.data[{i}]: expected {len(columns)} values (one per column), "
                f"got {len(row) if isinstance(row, list) else type(row).__name__}"
            )
    return inputs.from_columns(
        {str(name): [row[j] for row in data] for j, name in enumerate(columns)},
        "dataframe_split",
    )


def _read_csv(body: bytes) -> tuple[list[str], list[list[Any]]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("csv: expected UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    rows = [row for row in reader if row]
    if len(rows) < 2:
        raise BadRequest(f"csv: expected a header row and at least one data row, got {len(rows)}")
    header, data = rows[0], rows[1:]
    for i, row in enumerate(data):
        if len(row) != len(header):
            raise BadRequest(
                f"csv row {i + 1}: expected {len(header)} values like the header, got {len(row)}"
            )
    return header, [[_cell(v) for v in row] for row in data]


def _read_parquet(body: bytes) -> dict[str, Any]:
    """Columns of a Parquet file: numbers as numpy arrays, anything else as Python lists."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # not read_table: its dataset layer imports pandas, ~0.4 s on a request
        table = pq.ParquetFile(pa.BufferReader(body)).read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BadRequest(f"parquet: cannot read the body as a Parquet file: {exc}") from None
    columns: dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        if numeric and column.null_count == 0:
            columns[name] = column.to_numpy()
        else:
            columns[name] = column.to_pylist()
    return columns


def _cell(text: str) -> Any:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def encode_response(outputs: dict[str, np.ndarray]) -> bytes:
    return _encoder.encode({"predictions": outputs["predict"].tolist()})


# MLflow's error codes (mlflow.protos.databricks_pb2.ErrorCode) by HTTP status
_ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "BAD_REQUEST",
    415: "BAD_REQUEST",
    501: "NOT_IMPLEMENTED",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "TEMPORARILY_UNAVAILABLE",
}


def error_body(status: int, message: str) -> bytes:
    """An error in the MLflow scoring server's shape (``error_code``, ``message``), with the
    ``error`` key every other mlgate endpoint answers with.

    >>> msgspec.json.decode(error_body(404, "model 'x' not found"))["error_code"]
    'RESOURCE_DOES_NOT_EXIST'
    """
    code = _ERROR_CODES.get(status, "INTERNAL_ERROR")
    return _encoder.encode({"error_code": code, "message": message, "error": message})
