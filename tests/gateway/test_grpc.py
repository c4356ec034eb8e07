"""OIP over gRPC against a real ``mlgate serve`` process, driven by Triton's own client
(``tritonclient.grpc``) and by plain ``grpcio`` calls with the typed ``contents`` form.

The models are served by the ``sklearn`` backend, so every answer must equal the estimator's
own ``predict_proba`` / ``predict`` exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import polars as pl
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from gateway.grpc import oip_pb2 as pb
from registry import Registry
from tests.gateway.conftest import fit_diabetes, fit_iris, iris
from tests.gateway.mlgate_process import ServedProcess, mlgate_serve
from tests.helpers import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedProcess]:
    root = tmp_path_factory.mktemp("grpc")
    registry = Registry("file://" + str(root / "registry"))
    X, _ = iris()
    registry.register("iris", fit_iris(), reference=X[:50])
    registry.register("diabetes", fit_diabetes())
    config = '[gateway]\nbackend = "sklearn"\nlog_flush_interval_s = 0.2\nmax_request_rows = 1000\n'
    with mlgate_serve(root, config) as served:
        yield served


@pytest.fixture
def client(server: ServedProcess) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(server.grpc_address)
    yield c
    c.close()


def _input(X: np.ndarray, name: str = "input-0") -> triton.InferInput:
    tensor = triton.InferInput(name, list(X.shape), triton.np_to_triton_dtype(X.dtype))
    tensor.set_data_from_numpy(X)
    return tensor


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris") and client.is_model_ready("iris", "1")
    assert not client.is_model_ready("iris", "7")
    server = client.get_server_metadata(as_json=True)
    assert server["name"] == "mlgate" and "binary_tensor_data" in server["extensions"]
    meta = client.get_model_metadata("iris", as_json=True)
    assert meta["name"] == "iris" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": ["-1", "4"]}]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    assert meta["outputs"][1]["shape"] == ["-1", "3"]


def test_model_config_is_what_perf_analyzer_reads(
    client: triton.InferenceServerClient,
) -> None:
    config = client.get_model_config("iris", as_json=True)["config"]
    assert config["name"] == "iris" and config["max_batch_size"] == 1000
    assert config["input"] == [{"name": "input-0", "data_type": "TYPE_FP32", "dims": ["4"]}]
    outputs = {o["name"]: o for o in config["output"]}
    assert outputs["predict"]["data_type"] == "TYPE_STRING"
    assert outputs["predict_proba"]["dims"] == ["3"]
    assert config["dynamic_batching"]["preferred_batch_size"] == [256]
    assert config["parameters"]["version"]["string_value"] == "1"


def test_infer_matches_the_estimator_exactly(client: triton.InferenceServerClient) -> None:
    X, _ = iris()
    rows = X[::10]  # 15 rows of all three classes
    result = client.infer("iris", [_input(rows)], request_id="grpc-exact-1")
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), fit_iris().predict_proba(rows))
    labels = [v.decode() for v in result.as_numpy("predict")]
    assert labels == fit_iris().predict(rows).tolist()
    response = result.get_response()
    assert response.id == "grpc-exact-1"
    assert response.model_name == "iris" and response.model_version == "1"


def test_infer_fp64_explicit_version_and_one_output(
    client: triton.InferenceServerClient,
) -> None:
    X, _ = iris()
    rows = X[:3].astype(np.float64)
    asked = [triton.InferRequestedOutput("predict_proba")]
    result = client.infer("iris", [_input(rows)], model_version="1", outputs=asked)
    assert result.as_numpy("predict") is None
    np.testing.assert_array_equal(
        result.as_numpy("predict_proba"), fit_iris().predict_proba(rows.astype(np.float32))
    )


def test_regressor(client: triton.InferenceServerClient) -> None:
    from sklearn.datasets import load_diabetes

    X = load_diabetes().data.astype(np.float32)[:9]
    result = client.infer("diabetes", [_input(X)])
    np.testing.assert_array_equal(result.as_numpy("predict"), fit_diabetes().predict(X))


def _call(server: ServedProcess, method: str, request: Any, response_type: Any, **kw: Any) -> Any:
    with grpc.insecure_channel(server.grpc_address) as channel:
        rpc = channel.unary_unary(
            f"/inference.GRPCInferenceService/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_type.FromString,
        )
        return rpc(request, timeout=30, **kw)


def test_typed_contents_are_answered_with_contents(server: ServedProcess) -> None:
    """The KServe spec's other form: values in ``contents``, not ``raw_input_contents``."""
    X, _ = iris()
    rows = X[:4]
    request = pb.ModelInferRequest(model_name="iris", id="contents-1")
    tensor = request.inputs.add(name="input-0", datatype="FP32", shape=list(rows.shape))
    tensor.contents.fp32_contents.extend(rows.ravel().tolist())
    response = _call(server, "ModelInfer", request, pb.ModelInferResponse)
    assert not response.raw_output_contents and response.id == "contents-1"
    outputs = {o.name: o for o in response.outputs}
    proba = np.array(outputs["predict_proba"].contents.fp64_contents).reshape(4, 3)
    np.testing.assert_array_equal(proba, fit_iris().predict_proba(rows))
    assert list(outputs["predict_proba"].shape) == [4, 3]
    labels = [v.decode() for v in outputs["predict"].contents.bytes_contents]
    assert labels == fit_iris().predict(rows).tolist()


def _bad(**fields: Any) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=fields.pop("model", "iris"))
    raw = fields.pop("raw", None)
    tensor = request.inputs.add(
        name="input-0", datatype=fields.pop("datatype", "FP32"), shape=fields.pop("shape", [1, 4])
    )
    if raw is not None:
        request.raw_input_contents.append(raw)
    else:
        tensor.contents.fp32_contents.extend(fields.pop("values", [5.1, 3.5, 1.4, 0.2]))
    for name in fields.pop("outputs", []):
        request.outputs.add(name=name)
    request.model_version = fields.pop("version", "")
    assert not fields
    return request


@pytest.mark.parametrize(
    ("request_", "code", "needle"),
    [
        (_bad(model="nope"), grpc.StatusCode.NOT_FOUND, "model 'nope' not found"),
        (_bad(version="9"), grpc.StatusCode.NOT_FOUND, "version 9: not loaded"),
        (_bad(version="x"), grpc.StatusCode.NOT_FOUND, "version 'x': expected a positive"),
        (_bad(shape=[1, 3], values=[1, 2, 3]), grpc.StatusCode.INVALID_ARGUMENT,
         "expected shape [n, 4]"),
        (_bad(shape=[2, 4]), grpc.StatusCode.INVALID_ARGUMENT,
         "shape [2, 4] needs 8 values, got 4 in contents.fp32_contents"),
        (_bad(datatype="FP31"), grpc.StatusCode.INVALID_ARGUMENT, "unknown datatype 'FP31'"),
        (_bad(datatype="FP16"), grpc.StatusCode.INVALID_ARGUMENT,
         "FP16 travels in raw_input_contents only"),
        (_bad(raw=b"\0" * 15), grpc.StatusCode.INVALID_ARGUMENT,
         "needs 16 bytes, got binary_data_size 15"),
        (_bad(raw=np.full(4, np.nan, np.float32).tobytes()), grpc.StatusCode.INVALID_ARGUMENT,
         "NaN"),
        (_bad(outputs=["nope"]), grpc.StatusCode.INVALID_ARGUMENT,
         "outputs[0]: unknown output 'nope'"),
        (_bad(shape=[2000, 4], values=[0.0] * 8000), grpc.StatusCode.INVALID_ARGUMENT,
         "max_request_rows=1000"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_status_naming_the_field(
    server: ServedProcess, request_: pb.ModelInferRequest, code: grpc.StatusCode, needle: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        _call(server, "ModelInfer", request_, pb.ModelInferResponse)
    error: Any = caught.value
    assert error.code() == code, error.details()
    assert needle in error.details()
    assert _call(server, "ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse).live


def test_triton_client_errors(client: triton.InferenceServerClient) -> None:
    X, _ = iris()
    with pytest.raises(InferenceServerException, match="NOT_FOUND.*'nope' not found"):
        client.get_model_metadata("nope")
    with pytest.raises(InferenceServerException, match="expected shape \\[n, 4\\]"):
        client.infer("iris", [_input(X[:2, :3])])
    with pytest.raises(InferenceServerException, match="UNIMPLEMENTED"):
        client.get_system_shared_memory_status()


def test_grpc_requests_share_the_log_and_metrics(
    server: ServedProcess, client: triton.InferenceServerClient
) -> None:
    X, _ = iris()
    for i in range(3):
        client.infer("iris", [_input(X[i : i + 2])], request_id=f"grpc-log-{i}")
    metrics = httpx.get(f"{server.http_url}/metrics").text
    line = next(
        ln for ln in metrics.splitlines()
        if ln.startswith("mlgate_requests_total{")
        and all(f in ln for f in ('model="iris"', 'route="champion"', 'status="200"'))
    )  # fmt: skip
    assert float(line.split()[-1]) >= 3

    def logged() -> set[str]:
        files = list(server.logs.glob("predictions/model=iris/**/*.parquet"))
        if not files:
            return set()
        return set(pl.read_parquet(files)["request_id"].to_list())

    # one log row per input row: "<request id>/<row>"
    expected = {f"grpc-log-{i}/{row}" for i in range(3) for row in range(2)}
    wait_for(lambda: expected <= logged(), timeout_s=30)


def test_one_process_holds_our_messages_and_tritonclients(server: ServedProcess) -> None:
    """Both define ``inference.*``: ours live in a private descriptor pool, so they coexist."""
    from tritonclient.grpc import service_pb2

    ours = pb.ModelInferRequest(model_name="iris", raw_input_contents=[b"x"])
    theirs = service_pb2.ModelInferRequest.FromString(ours.SerializeToString())
    assert theirs.model_name == "iris" and list(theirs.raw_input_contents) == [b"x"]


def test_predict_token_is_required_over_grpc_too(tmp_path: Path) -> None:
    registry = Registry("file://" + str(tmp_path / "registry"))
    registry.register("iris", fit_iris())
    X, _ = iris()
    config = '[gateway]\nbackend = "sklearn"\npredict_token = "tok"\n'
    with mlgate_serve(tmp_path, config) as served:
        client = triton.InferenceServerClient(served.grpc_address)
        try:
            with pytest.raises(InferenceServerException, match="UNAUTHENTICATED.*predict token"):
                client.infer("iris", [_input(X[:1])])
            with pytest.raises(InferenceServerException, match="UNAUTHENTICATED.*wrong token"):
                client.infer("iris", [_input(X[:1])], headers={"authorization": "Bearer no"})
            result = client.infer("iris", [_input(X[:2])], headers={"authorization": "Bearer tok"})
            np.testing.assert_array_equal(
                result.as_numpy("predict_proba"), fit_iris().predict_proba(X[:2])
            )
        finally:
            client.close()
