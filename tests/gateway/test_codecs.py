"""Protocol codecs and input validation, without a server."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.codecs import mlflow, oip, v1
from gateway.errors import BadRequest, UnsupportedMediaType
from gateway.schema import InputSpec, OutputSpec
from registry.model import Feature, OutputSchema

NUMERIC = InputSpec([Feature(f"f{i}") for i in range(3)], allows_nan=False)
MIXED = InputSpec(
    [Feature("age"), Feature("color", "object", ["red", "green"]), Feature("n", "int64", [1, 5])],
    allows_nan=False,
)
OUTPUTS = OutputSpec(OutputSchema("classification", [0, 1]), np.array([0, 1]))


def oip_body(inputs: list[dict[str, object]], **extra: object) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


def test_oip_one_2d_tensor_flat_and_nested_give_the_same_matrix() -> None:
    flat = oip.decode_request(
        oip_body(
            [{"name": "input-0", "shape": [2, 3], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6]}]
        )
    )
    nested = oip.decode_request(
        oip_body(
            [
                {
                    "name": "input-0",
                    "shape": [2, 3],
                    "datatype": "INT32",
                    "data": [[1, 2, 3], [4, 5, 6]],
                }
            ]
        )
    )
    a = flat.to_matrix(NUMERIC, OUTPUTS)
    b = nested.to_matrix(NUMERIC, OUTPUTS)
    assert a.dtype == np.float32 and a.shape == (2, 3)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "datatype", ["BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32",
                 "UINT64", "FP16", "FP32", "FP64"],
)  # fmt: skip
def test_oip_every_number_datatype_is_accepted(datatype: str) -> None:
    data = [True, False, True] if datatype == "BOOL" else [1, 0, 1]
    payload = oip.decode_request(
        oip_body([{"name": "input-0", "shape": [1, 3], "datatype": datatype, "data": data}])
    )
    np.testing.assert_array_equal(payload.to_matrix(NUMERIC, OUTPUTS), [[1, 0, 1]])


def test_oip_one_tensor_per_feature_with_bytes_categories() -> None:
    payload = oip.decode_request(
        oip_body(
            [
                {"name": "color", "shape": [2], "datatype": "BYTES", "data": ["green", "red"]},
                {"name": "age", "shape": [2, 1], "datatype": "FP32", "data": [30, 40]},
                {"name": "n", "shape": [2], "datatype": "INT64", "data": [5, 1]},
            ]
        )
    )
    X = payload.to_matrix(MIXED, OUTPUTS)
    np.testing.assert_array_equal(X, [[30, 1, 5], [40, 0, 1]])


def test_oip_binary_extension_request_built_from_the_spec() -> None:
    rows = np.arange(6, dtype="<f4").reshape(2, 3)
    header = json.dumps(
        {
            "inputs": [
                {"name": "input-0", "shape": [2, 3], "datatype": "FP32",
                 "parameters": {"binary_data_size": rows.nbytes}}
            ],
            "outputs": [{"name": "predict_proba", "parameters": {"binary_data": True}}],
        }
    ).encode()  # fmt: skip
    payload = oip.decode_request(header + rows.tobytes(), str(len(header)))
    np.testing.assert_array_equal(payload.to_matrix(NUMERIC, OUTPUTS), rows)
    assert payload.requested(OUTPUTS) == [("predict_proba", True)]


def test_oip_binary_bytes_elements_are_length_prefixed() -> None:
    words = [b"green", b"red"]
    raw = b"".join(struct.pack("<I", len(w)) + w for w in words)
    ages = np.array([30, 40], dtype="<f8").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {"name": "color", "shape": [2], "datatype": "BYTES",
                 "parameters": {"binary_data_size": len(raw)}},
                {"name": "age", "shape": [2], "datatype": "FP64",
                 "parameters": {"binary_data_size": len(ages)}},
                {"name": "n", "shape": [2], "datatype": "INT64", "data": [1, 1]},
            ]
        }
    ).encode()  # fmt: skip
    X = oip.decode_request(header + raw + ages, str(len(header))).to_matrix(MIXED, OUTPUTS)
    np.testing.assert_array_equal(X[:, 1], [1, 0])


def test_oip_response_binary_outputs_follow_the_json_header() -> None:
    outputs = {"predict": np.array([1, 0]), "predict_proba": np.array([[0.2, 0.8], [0.9, 0.1]])}
    body, header_length = oip.encode_response(
        model="m", version=3, request_id="r1", outputs=outputs,
        requested=[("predict", False), ("predict_proba", True)], spec=OUTPUTS,
    )  # fmt: skip
    assert header_length is not None
    header = json.loads(body[:header_length])
    assert header["id"] == "r1" and header["model_version"] == "3"
    assert header["outputs"][0]["data"] == [1, 0]
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 32}
    proba = np.frombuffer(body[header_length:], dtype="<f8").reshape(2, 2)
    np.testing.assert_array_equal(proba, outputs["predict_proba"])


@pytest.mark.parametrize(
    ("inputs", "header_length", "needle"),
    [
        ([{"name": "input-0", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}], None,
         "expected shape [n, 3]"),
        ([{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2]}], None,
         "needs 3 values, got 2"),
        ([{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": ["a", 1, 2]}], None,
         "Expected float, got str"),
        ([{"name": "input-0", "shape": [1, 3], "datatype": "FLOAT", "data": [1, 2, 3]}], None,
         "unknown datatype 'FLOAT'"),
        ([{"name": "input-0", "shape": [1, 3], "datatype": "UINT8", "data": [1, 2, 300]}], None,
         "out of range"),
        ([{"name": "input-0", "shape": [1, 3], "datatype": "FP32"}], None, "expected 'data'"),
        ([{"name": "input-0", "shape": [1, 3], "datatype": "FP32",
           "parameters": {"binary_data_size": 12}}], "all", "12 bytes requested"),
        ([{"name": "f0", "shape": [1], "datatype": "FP32", "data": [1]},
          {"name": "zz", "shape": [1], "datatype": "FP32", "data": [1]}], None,
         "missing ['f1', 'f2'], unknown ['zz']"),
        ([{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [1, 1e39, 2]}], None,
         "feature 'f1' row 0: expected finite values"),
        ([{"name": "input-0", "shape": [1, 3], "datatype": "BYTES", "data": ["1", "2", "3"]}], None,
         "BYTES is accepted only"),
    ],
)  # fmt: skip
def test_oip_bad_requests_name_the_field_rule_and_value(
    inputs: list[dict[str, object]], header_length: str | None, needle: str
) -> None:
    body = oip_body(inputs)
    if header_length == "all":  # a JSON header with no binary bytes after it
        header_length = str(len(body))
    with pytest.raises(BadRequest) as info:
        oip.decode_request(body, header_length).to_matrix(NUMERIC, OUTPUTS)
    assert needle in str(info.value)


def test_oip_unknown_output_and_bad_categories_are_400() -> None:
    body = oip_body(
        [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}],
        outputs=[{"name": "logits"}],
    )
    with pytest.raises(BadRequest, match=r"unknown output 'logits': expected one of"):
        oip.decode_request(body).to_matrix(NUMERIC, OUTPUTS)
    bad = oip_body(
        [
            {"name": "color", "shape": [1], "datatype": "BYTES", "data": ["blue"]},
            {"name": "age", "shape": [1], "datatype": "FP32", "data": [1]},
            {"name": "n", "shape": [1], "datatype": "INT64", "data": [2]},
        ]
    )
    with pytest.raises(BadRequest, match=r"feature 'color' row 0: expected one of the categories"):
        oip.decode_request(bad).to_matrix(MIXED, OUTPUTS)


def test_invalid_json_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="invalid JSON"):
        oip.decode_request(b"{nope")
    with pytest.raises(BadRequest, match="invalid JSON"):
        v1.V1Payload(b"[1,")


def test_nan_is_refused_unless_the_model_takes_missing_values() -> None:
    X = np.array([[1.0, np.nan, 2.0]])
    with pytest.raises(BadRequest, match="refuses NaN"):
        NUMERIC.from_matrix(X, "x")
    lenient = InputSpec([Feature(f"f{i}") for i in range(3)], allows_nan=True)
    assert np.isnan(lenient.from_matrix(X, "x")[0, 1])
    assert np.isnan(lenient.from_rows([[1, None, 2]], "instances")[0, 1])


@pytest.mark.parametrize(
    "body",
    [
        {"instances": [[1, 2, 3], [4, 5, 6]]},
        {"instances": [{"f0": 1, "f1": 2, "f2": 3}, {"f2": 6, "f1": 5, "f0": 4}]},
        {"inputs": {"f0": [1, 4], "f1": [2, 5], "f2": [3, 6]}},
    ],
)
def test_v1_rows_records_and_columns(body: dict[str, object]) -> None:
    X = v1.V1Payload(json.dumps(body).encode()).to_matrix(NUMERIC, OUTPUTS)
    np.testing.assert_array_equal(X, [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"dataframe_split": {"columns": ["f2", "f0", "f1"], "data": [[3, 1, 2], [6, 4, 5]]}}',
         "application/json"),
        (b'{"dataframe_records": [{"f0": 1, "f1": 2, "f2": 3}, {"f0": 4, "f1": 5, "f2": 6}]}',
         "application/json"),
        (b'{"instances": [[1, 2, 3], [4, 5, 6]]}', "application/json"),
        (b'{"inputs": {"f0": [1, 4], "f1": [2, 5], "f2": [3, 6]}}', "application/json"),
        (b"f1,f0,f2\n2,1,3\n5,4,6\n", "text/csv"),
    ],
)  # fmt: skip
def test_mlflow_formats(body: bytes, content_type: str) -> None:
    X = mlflow.decode_request(body, content_type).to_matrix(NUMERIC, OUTPUTS)
    np.testing.assert_array_equal(X, [[1, 2, 3], [4, 5, 6]])


def test_mlflow_bad_requests() -> None:
    with pytest.raises(BadRequest, match="expected exactly one of"):
        mlflow.decode_request(b'{"rows": []}', "application/json")
    with pytest.raises(UnsupportedMediaType):
        mlflow.decode_request(b"x", "application/xml")
    with pytest.raises(BadRequest, match=r"row 0: expected a number, got 'abc'"):
        mlflow.decode_request(b"f0,f1,f2\nabc,1,2\n", "text/csv").to_matrix(NUMERIC, OUTPUTS)
    with pytest.raises(BadRequest, match=r"instances\[1\]: expected a row of 3 values"):
        v1.V1Payload(b'{"instances": [[1,2,3],[1,2]]}').to_matrix(NUMERIC, OUTPUTS)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    datatype=st.sampled_from(["FP16", "FP32", "FP64", "INT8", "INT32", "INT64", "UINT8", "UINT16"]),
    n=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_json_flat_nested_and_binary_encodings_decode_alike(
    datatype: str, n: int, seed: int
) -> None:
    from gateway.codecs.datatypes import NUMPY

    dtype = NUMPY[datatype]
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 100, size=(n, 3)).astype(dtype)
    flat = {
        "name": "input-0",
        "shape": [n, 3],
        "datatype": datatype,
        "data": values.ravel().tolist(),
    }
    nested = {**flat, "data": values.tolist()}
    header = json.dumps(
        {"inputs": [{"name": "input-0", "shape": [n, 3], "datatype": datatype,
                     "parameters": {"binary_data_size": values.nbytes}}]}
    ).encode()  # fmt: skip
    decoded = [
        oip.decode_request(oip_body([flat])).to_matrix(NUMERIC, OUTPUTS),
        oip.decode_request(oip_body([nested])).to_matrix(NUMERIC, OUTPUTS),
        oip.decode_request(header + values.tobytes(), str(len(header))).to_matrix(NUMERIC, OUTPUTS),
    ]
    for X in decoded:
        np.testing.assert_array_equal(X, values.astype(np.float32))
