"""MLflow scoring protocol (``POST /invocations``): JSON ``dataframe_split``,
``dataframe_records``, ``instances`` or ``inputs``, or ``text/csv`` with a header row."""

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
_encoder = msgspec.json.Encoder()


class MlflowPayload:
    def __init__(self, kind: str, value: Any) -> None:
        self.kind = kind
        self.value = value

    def to_matrix(self, inputs: InputSpec, outputs: OutputSpec) -> np.ndarray:
        if self.kind == "dataframe_split":
            return _split_matrix(self.value, inputs)
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
    if media not in ("application/json", ""):
        raise UnsupportedMediaType(
            f"header Content-Type: expected application/json or text/csv, got {content_type!r}"
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


def _cell(text: str) -> Any:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def encode_response(outputs: dict[str, np.ndarray]) -> bytes:
    return _encoder.encode({"predictions": outputs["predict"].tolist()})
