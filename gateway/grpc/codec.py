"""OIP gRPC messages to and from the gateway's transport-free payloads.

A ``ModelInferRequest`` becomes the same ``OipPayload`` the REST codec builds, so validation,
requested outputs and everything after them are shared with HTTP. Tensors come either from
``raw_input_contents`` (flat little-endian bytes, what Triton's client sends) or from the typed
``contents`` lists; the answer uses the same form the request used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gateway.codecs.datatypes import (
    NUMPY,
    binary_tensor,
    check_datatype,
    element_count,
    to_bytes_elements,
)
from gateway.codecs.oip import OipPayload, RequestOutput, Tensor, presented
from gateway.errors import BadRequest
from gateway.grpc import oip_pb2 as pb

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gateway.service import Prediction

# the typed field of InferTensorContents that holds each datatype (FP16 travels raw only)
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def parameters(params: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    """A ``map<string, InferParameter>`` as plain values.

    >>> p = pb.ModelInferRequest()
    >>> p.parameters["binary_data_output"].bool_param = True
    >>> p.parameters["classification"].int64_param = 2
    >>> sorted(parameters(p.parameters).items())
    [('binary_data_output', True), ('classification', 2)]
    """
    out: dict[str, Any] = {}
    for key, value in params.items():
        choice = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, choice) if choice is not None else None
    return out


def decode_request(request: pb.ModelInferRequest) -> OipPayload:
    """The payload of an inference request; raises ``BadRequest`` naming the field.

    Repeated fields are read by slicing (one list at once, not an element at a time) and
    ``raw_input_contents`` become arrays over the message's own bytes (``np.frombuffer``).
    """
    inputs = request.inputs
    if not inputs:
        raise BadRequest("ModelInferRequest.inputs: expected at least one tensor, got none")
    raw = request.raw_input_contents
    if raw and len(raw) != len(inputs):
        raise BadRequest(
            f"raw_input_contents: expected one entry per input ({len(inputs)}), got {len(raw)}"
        )
    tensors = []
    for i, item in enumerate(inputs):
        field = f"inputs[{i}] ({item.name!r})"
        shape = item.shape[:]
        if raw:
            if item.HasField("contents"):
                raise BadRequest(
                    f"{field}: 'contents' must be empty when raw_input_contents is used"
                )
            array = binary_tensor(memoryview(raw[i]), item.datatype, shape, field)
        else:
            array = _from_contents(item, shape, field)
        tensors.append(Tensor(item.name, item.datatype, array))
    outputs = None
    if request.outputs:
        names = [o.name for o in request.outputs]
        if len(set(names)) != len(names):
            raise BadRequest(f"outputs: each output may be requested once, got {names}")
        outputs = [
            RequestOutput(name=o.name, parameters=parameters(o.parameters)) for o in request.outputs
        ]
    params = parameters(request.parameters) if request.parameters else {}
    return OipPayload(tensors, id=request.id or None, parameters=params, outputs=outputs)


def _from_contents(
    item: pb.ModelInferRequest.InferInputTensor, shape: list[int], field: str
) -> np.ndarray:
    datatype = item.datatype
    check_datatype(datatype, field)
    count = element_count(shape, field)
    name = CONTENTS_FIELD.get(datatype)
    if name is None:
        raise BadRequest(f"{field}: datatype {datatype} travels in raw_input_contents only")
    values = getattr(item.contents, name)[:]  # a list: numpy reads it at C speed
    if len(values) != count:
        raise BadRequest(
            f"{field}: shape {shape} needs {count} values, got {len(values)} in contents.{name}"
        )
    if datatype == "BYTES":
        decoded = [v.decode("utf-8", errors="replace") for v in values]
        return np.array(decoded, dtype=object).reshape(shape)
    try:
        array = np.array(values, dtype=NUMPY[datatype])
    except OverflowError:
        raise BadRequest(
            f"{field}: a value in contents.{name} is out of range for {datatype}"
        ) from None
    return array.reshape(shape)


def encode_response(
    payload: OipPayload, prediction: Prediction, *, raw: bool
) -> pb.ModelInferResponse:
    """The ``ModelInferResponse`` of a served request: the outputs the request chose, as
    ``raw_output_contents`` when ``raw`` (the request sent raw inputs), else as contents."""
    spec = prediction.loaded.outputs
    response = pb.ModelInferResponse(
        model_name=prediction.model,
        model_version=str(prediction.version),
        id=payload.id or "",
    )
    for name, _ in payload.chosen:
        arr, datatype = presented(name, prediction.outputs, spec, payload.class_counts)
        tensor = response.outputs.add(name=name, datatype=datatype, shape=arr.shape)
        if raw:
            response.raw_output_contents.append(_raw(arr, datatype))
        elif datatype == "BYTES":
            tensor.contents.bytes_contents.extend(
                v if isinstance(v, bytes) else str(v).encode() for v in arr.ravel().tolist()
            )
        else:
            getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(arr.ravel().tolist())
    return response


def _raw(arr: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        return to_bytes_elements(arr)
    return np.ascontiguousarray(arr, dtype=NUMPY[datatype]).tobytes()
