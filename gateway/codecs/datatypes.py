"""Open Inference Protocol tensor datatypes and their numpy equivalents."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from gateway.errors import BadRequest

# little-endian numpy dtype of each fixed-size OIP datatype
NUMPY: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES = (*NUMPY, "BYTES")

# what a JSON element of each datatype must be (msgspec checks strictly: no strings for numbers)
_JSON_ELEMENT: dict[str, Any] = {
    "BOOL": list[bool],
    "FP16": list[float],
    "FP32": list[float],
    "FP64": list[float],
    "BYTES": list[str],
}
_JSON_INT = list[int]


def check_datatype(datatype: str, field: str) -> None:
    if datatype not in DATATYPES:
        raise BadRequest(
            f"{field}: unknown datatype {datatype!r}: expected one of {list(DATATYPES)}"
        )


def element_count(shape: list[int], field: str) -> int:
    count = 1
    for dim in shape:
        if not isinstance(dim, int) or dim < 0:
            raise BadRequest(f"{field}: shape must hold non-negative integers, got {shape}")
        count *= dim
    return count


def flatten(data: Any, field: str) -> list[Any]:
    """Row-major flat list of ``data`` (flat or nested lists)."""
    if not isinstance(data, list):
        raise BadRequest(f"{field}: expected 'data' to be a list, got {type(data).__name__}")
    flat = data
    while flat and isinstance(flat[0], list):
        if not all(isinstance(item, list) for item in flat):
            raise BadRequest(f"{field}: nested 'data' mixes lists and values")
        flat = [v for item in flat for v in item]
    return flat


def json_tensor(data: Any, datatype: str, shape: list[int], field: str) -> np.ndarray:
    """A tensor from JSON ``data``; checks element types and the element count of ``shape``."""
    check_datatype(datatype, field)
    count = element_count(shape, field)
    flat = flatten(data, field)
    if len(flat) != count:
        raise BadRequest(f"{field}: shape {shape} needs {count} values, got {len(flat)} in 'data'")
    try:
        values = msgspec.convert(flat, _JSON_ELEMENT.get(datatype, _JSON_INT))
    except msgspec.ValidationError as exc:
        raise BadRequest(f"{field}: datatype {datatype}: {_element_error(exc)}") from None
    if datatype == "BYTES":
        return np.array(values, dtype=object).reshape(shape)
    try:
        with np.errstate(over="ignore"):  # FP16/FP32 overflow -> inf, refused by the schema
            arr = np.array(values, dtype=NUMPY[datatype])
    except OverflowError:
        raise BadRequest(f"{field}: value out of range for datatype {datatype}") from None
    return arr.reshape(shape)


def binary_tensor(raw: memoryview, datatype: str, shape: list[int], field: str) -> np.ndarray:
    """A tensor from raw little-endian bytes (Triton binary tensor data extension)."""
    check_datatype(datatype, field)
    count = element_count(shape, field)
    if datatype == "BYTES":
        return bytes_elements(raw, count, field).reshape(shape)
    dtype = NUMPY[datatype]
    if len(raw) != count * dtype.itemsize:
        raise BadRequest(
            f"{field}: shape {shape} of {datatype} needs {count * dtype.itemsize} bytes, "
            f"got binary_data_size {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def bytes_elements(raw: memoryview, count: int, field: str) -> np.ndarray:
    """BYTES elements: each a 4-byte little-endian length then the bytes."""
    out = np.empty(count, dtype=object)
    pos = 0
    for i in range(count):
        if pos + 4 > len(raw):
            raise BadRequest(f"{field}: BYTES data ends before element {i} of {count}")
        size = int.from_bytes(raw[pos : pos + 4], "little")
        pos += 4
        if pos + size > len(raw):
            raise BadRequest(f"{field}: BYTES element {i} claims {size} bytes past the end")
        out[i] = bytes(raw[pos : pos + size]).decode("utf-8", errors="replace")
        pos += size
    if pos != len(raw):
        raise BadRequest(f"{field}: {len(raw) - pos} bytes left after {count} BYTES elements")
    return out


def to_bytes_elements(values: np.ndarray) -> bytes:
    parts = []
    for value in values.ravel().tolist():
        b = value if isinstance(value, bytes) else str(value).encode()
        parts.append(len(b).to_bytes(4, "little"))
        parts.append(b)
    return b"".join(parts)


def _element_error(exc: msgspec.ValidationError) -> str:
    # msgspec says "Expected `float`, got `str` - at `$[3]`"
    text = str(exc)
    return text.replace("`$[", "element [").replace("]`", "]").replace("`", "")
