"""KServe V1 / TensorFlow Serving REST: ``{"instances": [...]}`` or ``{"inputs": ...}``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from gateway.codecs.tabular import decode_json_object, table_matrix
from gateway.errors import BadRequest

if TYPE_CHECKING:
    import numpy as np

    from gateway.schema import InputSpec, OutputSpec

_encoder = msgspec.json.Encoder()


class V1Payload:
    """``instances`` as rows or records (row format), or ``inputs`` (columnar format)."""

    def __init__(self, body: bytes) -> None:
        data = decode_json_object(body, "predict request")
        if "instances" in data:
            self.field, self.value, self.columnar = "instances", data["instances"], False
        elif "inputs" in data:
            self.field, self.value, self.columnar = "inputs", data["inputs"], True
        else:
            raise BadRequest(
                f"predict request: expected key 'instances' or 'inputs', got {sorted(data)}"
            )

    def to_matrix(self, inputs: InputSpec, outputs: OutputSpec) -> np.ndarray:
        return table_matrix(self.value, inputs, self.field)


def encode_response(payload: V1Payload, outputs: dict[str, np.ndarray]) -> bytes:
    """``{"predictions": [...]}`` (row format) or ``{"outputs": [...]}`` (columnar format):
    the class label or value per row, as KServe's scikit-learn server answers."""
    values: list[Any] = outputs["predict"].tolist()
    key = "outputs" if payload.columnar else "predictions"
    return _encoder.encode({key: values})


def model_status(name: str, ready: bool) -> bytes:
    return _encoder.encode({"name": name, "ready": ready})
