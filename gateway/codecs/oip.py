"""Open Inference Protocol (KServe V2) REST: inference request decoding, response encoding,
server and model metadata. JSON through msgspec; Triton's binary extension in ``binary``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from gateway.codecs import binary
from gateway.codecs.datatypes import NUMPY, binary_tensor, json_tensor, to_bytes_elements
from gateway.errors import BadRequest, too_deep

if TYPE_CHECKING:
    from gateway.models import LoadedVersion, ModelState
    from gateway.schema import InputSpec, OutputSpec

SERVER_NAME = "mlgate"
EXTENSIONS = ["binary_tensor_data", "classification", "model_configuration", "statistics",
              "model_repository"]  # fmt: skip
MATRIX_INPUT = "input-0"  # the name of the one [n, d] tensor (model metadata declares it)
CLASSIFICATION = "classification"  # Triton's output parameter: top-k classes as BYTES


class RequestInput(msgspec.Struct):
    name: str
    shape: list[int]
    datatype: str
    data: Any = None
    parameters: dict[str, Any] | None = None


class RequestOutput(msgspec.Struct):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(msgspec.Struct):
    inputs: list[RequestInput]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestOutput] | None = None


_decoder = msgspec.json.Decoder(InferenceRequest)
_encoder = msgspec.json.Encoder()


class Tensor:
    __slots__ = ("array", "datatype", "name")

    def __init__(self, name: str, datatype: str, array: np.ndarray) -> None:
        self.name = name
        self.datatype = datatype
        self.array = array


class OipPayload:
    """A decoded inference request: tensors, id, parameters, requested outputs."""

    def __init__(
        self,
        tensors: list[Tensor],
        *,
        id: str | None,
        parameters: dict[str, Any],
        outputs: list[RequestOutput] | None,
    ) -> None:
        self.tensors = tensors
        self.id = id
        self.parameters = parameters
        self.outputs = outputs
        self.chosen: list[tuple[str, bool]] = []
        self.class_counts: dict[str, int] = {}  # output -> k, for Triton's classification

    def to_matrix(self, spec: InputSpec, outputs: OutputSpec) -> np.ndarray:
        # requested outputs are checked before the request joins a batch, and kept for the answer
        self.chosen = self.requested(outputs)
        tensors = self.tensors
        first = tensors[0]
        matrix_shaped = first.array.ndim == 2 and first.array.shape[1] == spec.n_features > 1
        if len(tensors) == 1 and (first.name not in spec.index or matrix_shaped):
            tensor = first
            field = f"input {tensor.name!r}"
            if tensor.name != MATRIX_INPUT and tensor.name not in spec.index:
                raise BadRequest(
                    f"{field}: not an input of this model: expected {MATRIX_INPUT!r} (one "
                    f"[n, {spec.n_features}] tensor) or one tensor per feature "
                    f"{spec.names[:12]}{' …' if spec.n_features > 12 else ''}"
                )
            if tensor.datatype == "BYTES":
                raise BadRequest(
                    f"{field}: datatype BYTES is accepted only as one tensor per categorical "
                    f"feature; send the [n, {spec.n_features}] tensor as a number type"
                )
            return spec.from_matrix(tensor.array, field)
        columns: dict[str, np.ndarray] = {}
        for tensor in tensors:
            if tensor.name in columns:
                raise BadRequest(f"input {tensor.name!r}: given twice")
            arr = tensor.array
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            if arr.ndim != 1:
                raise BadRequest(
                    f"input {tensor.name!r}: a per-feature tensor must have shape [n] or "
                    f"[n, 1], got {list(tensor.array.shape)}"
                )
            position = spec.index.get(tensor.name)
            if tensor.datatype == "BYTES" and position is not None:
                if position not in spec.categorical:
                    raise BadRequest(
                        f"input {tensor.name!r}: feature is numeric: expected a number datatype "
                        f"(FP32, FP64, INT*…), got BYTES"
                    )
            columns[tensor.name] = arr
        return spec.from_columns(columns, "inputs")

    def requested(self, spec: OutputSpec) -> list[tuple[str, bool]]:
        """``(output name, as binary)`` for each output to send, in order."""
        default_binary = bool(self.parameters.get("binary_data_output", False))
        if not self.outputs:
            return [(name, default_binary) for name in spec.names]
        out = []
        for i, requested in enumerate(self.outputs):
            spec.check_requested([requested.name], f"outputs[{i}]")
            params = requested.parameters or {}
            as_binary = params.get("binary_data", default_binary)
            if not isinstance(as_binary, bool):
                raise BadRequest(
                    f"outputs[{i}].parameters.binary_data: expected true or false, "
                    f"got {as_binary!r}"
                )
            count = params.get(CLASSIFICATION)
            if count is not None:
                self.class_counts[requested.name] = _class_count(count, requested.name, spec, i)
            out.append((requested.name, as_binary))
        return out


def _class_count(value: Any, name: str, spec: OutputSpec, i: int) -> int:
    field = f"outputs[{i}].parameters.{CLASSIFICATION}"
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest(f"{field}: expected a positive integer (class count), got {value!r}")
    if name != "predict_proba":
        raise BadRequest(
            f"{field}: classification applies to the class scores 'predict_proba', not to {name!r}"
        )
    return value


def classify(scores: np.ndarray, count: int, classes: np.ndarray | None) -> np.ndarray:
    """Triton's classification extension: per row, the ``count`` best classes as
    ``"score:index:label"`` (BYTES), best first; ``count`` is capped at the number of classes.

    >>> classify(np.array([[0.1, 0.7, 0.2]]), 2, np.array(["a", "b", "c"])).tolist()
    [['0.700000:1:b', '0.200000:2:c']]
    """
    k = min(count, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    out = np.empty(order.shape, dtype=object)
    for row, indices in enumerate(order.tolist()):
        for j, index in enumerate(indices):
            label = f":{classes[index]}" if classes is not None else ""
            out[row, j] = f"{scores[row, index]:f}:{index}{label}"
    return out


def presented(
    name: str, outputs: dict[str, np.ndarray], spec: OutputSpec, class_counts: dict[str, int]
) -> tuple[np.ndarray, str]:
    """The array and datatype an output is answered with (after classification, if asked)."""
    count = class_counts.get(name)
    if count is None:
        return outputs[name], spec.datatypes[name]
    return classify(outputs[name], count, spec.classes), "BYTES"


def decode_request(body: bytes, header_length: str | None = None) -> OipPayload:
    """Parse an inference request body (JSON, or JSON header + binary tensors)."""
    header, tail = binary.split_body(body, header_length)
    try:
        request = _decoder.decode(header)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"inference request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"inference request: invalid JSON: {exc}") from None
    except RecursionError:
        raise too_deep("inference request") from None
    if not request.inputs:
        raise BadRequest("inference request: 'inputs' must hold at least one tensor, got []")
    reader = binary.BinaryReader(tail)
    tensors = []
    for i, item in enumerate(request.inputs):
        field = f"inputs[{i}] ({item.name!r})"
        params = item.parameters or {}
        if "binary_data_size" in params:
            raw = reader.take(params["binary_data_size"], f"inputs[{i}]")
            array = binary_tensor(raw, item.datatype, item.shape, field)
        elif item.data is None:
            raise BadRequest(
                f"{field}: expected 'data' or parameters.binary_data_size, got neither"
            )
        else:
            array = json_tensor(item.data, item.datatype, item.shape, field)
        tensors.append(Tensor(item.name, item.datatype, array))
    reader.finish()
    params = request.parameters or {}
    if request.outputs is not None:
        names = [o.name for o in request.outputs]
        if len(set(names)) != len(names):
            raise BadRequest(f"outputs: each output may be requested once, got {names}")
    return OipPayload(tensors, id=request.id, parameters=params, outputs=request.outputs)


def encode_response(
    *,
    model: str,
    version: int,
    request_id: str | None,
    outputs: dict[str, np.ndarray],
    requested: list[tuple[str, bool]],
    spec: OutputSpec,
    class_counts: dict[str, int] | None = None,
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length."""
    items: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, as_binary in requested:
        arr, datatype = presented(name, outputs, spec, class_counts or {})
        item: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if as_binary:
            if datatype == "BYTES":
                blob = to_bytes_elements(arr)
            else:
                blob = np.ascontiguousarray(arr, dtype=NUMPY[datatype]).tobytes()
            item["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif datatype == "BYTES":
            item["data"] = [str(v) for v in arr.ravel().tolist()]
        else:
            item["data"] = arr.ravel().tolist()
        items.append(item)
    body: dict[str, Any] = {"model_name": model, "model_version": str(version)}
    if request_id is not None:
        body["id"] = request_id
    body["outputs"] = items
    header = _encoder.encode(body)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def tensor_metadata(spec: InputSpec) -> list[dict[str, Any]]:
    """OIP metadata of the inputs: one ``[-1, d]`` tensor, or one per feature when some are
    categorical (their datatype is BYTES)."""
    if spec.all_numeric:
        return [{"name": "input-0", "datatype": "FP32", "shape": [-1, spec.n_features]}]
    return [
        {
            "name": name,
            "datatype": "FP32"
            if i not in spec.categorical or spec.categorical[i].numeric
            else "BYTES",
            "shape": [-1],
        }
        for i, name in enumerate(spec.names)
    ]


def output_metadata(spec: OutputSpec) -> list[dict[str, Any]]:
    return [
        {"name": name, "datatype": spec.datatypes[name], "shape": spec.shapes[name]}
        for name in spec.names
    ]


def model_metadata(state: ModelState, loaded: LoadedVersion) -> dict[str, Any]:
    """OIP model metadata (``GET /v2/models/{m}``, gRPC ``ModelMetadata``) of ``loaded``."""
    return {
        "name": state.name,
        "versions": [str(v) for v in sorted(state.versions)],
        "platform": f"mlgate-{loaded.backend}",
        "inputs": tensor_metadata(loaded.inputs),
        "outputs": output_metadata(loaded.outputs),
        "parameters": {
            "version": str(loaded.version),
            "features": loaded.inputs.names,
            "task": loaded.outputs.task,
            "classes": loaded.outputs.classes.tolist()
            if loaded.outputs.classes is not None
            else None,
        },
    }
