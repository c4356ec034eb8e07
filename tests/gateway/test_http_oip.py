"""Open Inference Protocol over a real socket: plain HTTP clients built from the spec, and
Triton's own Python client."""

from __future__ import annotations

import http.client
import json
import struct
from urllib.parse import urlparse

import numpy as np
import pytest

from tests.gateway.conftest import Served, fit_iris, iris

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def expected_proba() -> np.ndarray:
    return fit_iris().predict_proba(np.array(ROWS, dtype=np.float32))


def post_raw(
    served: Served, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """A stdlib HTTP/1.1 request: no client library between the spec and the wire."""
    url = urlparse(served.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_server_and_model_metadata_and_health(shared: Served) -> None:
    with shared.client() as c:
        server = c.get("/v2").json()
        assert server["name"] == "mlgate" and "binary_tensor_data" in server["extensions"]
        assert c.get("/v2/health/live").status_code == 200
        assert c.get("/v2/health/ready").json() == {"ready": True}
        meta = c.get("/v2/models/iris").json()
        assert meta["name"] == "iris" and meta["versions"] == ["1"]
        assert meta["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
        assert meta["outputs"] == [
            {"name": "predict", "datatype": "BYTES", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
        ]
        assert c.get("/v2/models/iris/versions/1").json()["name"] == "iris"
        assert c.get("/v2/models/iris/ready").json()["ready"] is True
        assert c.get("/v2/models/iris/versions/1/ready").status_code == 200
        assert c.get("/v2/models/diabetes").json()["outputs"] == [
            {"name": "predict", "datatype": "FP64", "shape": [-1]}
        ]
        missing = c.get("/v2/models/nope")
        assert missing.status_code == 404 and "'nope' not found" in missing.json()["error"]
        assert c.get("/v2/models/iris/versions/7").status_code == 404


def test_infer_json_echoes_id_and_matches_sklearn(shared: Served) -> None:
    body = {
        "id": "req-1",
        "parameters": {"custom": 1},
        "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": ROWS}],
    }
    with shared.client() as c:
        r = c.post("/v2/models/iris/infer", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["x-model-version"] == "1" and r.headers["x-route"] == "champion"
    out = r.json()
    assert out["id"] == "req-1" and out["model_name"] == "iris" and out["model_version"] == "1"
    by_name = {o["name"]: o for o in out["outputs"]}
    assert by_name["predict"]["data"] == ["setosa", "virginica"]
    assert by_name["predict_proba"]["shape"] == [2, 3]
    np.testing.assert_allclose(
        np.array(by_name["predict_proba"]["data"]).reshape(2, 3), expected_proba(), atol=1e-6
    )


def test_infer_one_tensor_per_feature_and_requested_outputs(shared: Served) -> None:
    cols = np.array(ROWS).T
    body = {
        "inputs": [
            {"name": f"x{j}", "shape": [2], "datatype": "FP64", "data": cols[j].tolist()}
            for j in (3, 1, 0, 2)
        ],
        "outputs": [{"name": "predict"}],
    }
    with shared.client() as c:
        r = c.post("/v2/models/iris/infer", json=body)
        assert r.status_code == 200, r.text
        assert [o["name"] for o in r.json()["outputs"]] == ["predict"]
        assert "id" not in r.json()
        bad = c.post("/v2/models/iris/infer", json={**body, "outputs": [{"name": "logits"}]})
        assert bad.status_code == 400
        assert "unknown output 'logits'" in bad.json()["error"]


def test_binary_extension_hand_built_from_the_spec(shared: Served) -> None:
    data = np.array(ROWS, dtype="<f4")
    header = json.dumps(
        {
            "id": "bin-1",
            "inputs": [
                {"name": "input-0", "shape": [2, 4], "datatype": "FP32",
                 "parameters": {"binary_data_size": data.nbytes}}
            ],
            "outputs": [
                {"name": "predict", "parameters": {"binary_data": True}},
                {"name": "predict_proba", "parameters": {"binary_data": True}},
            ],
        }
    ).encode()  # fmt: skip
    status, headers, body = post_raw(
        shared,
        "/v2/models/iris/infer",
        header + data.tobytes(),
        {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header)),
        },
    )
    assert status == 200, body
    size = int(headers["inference-header-content-length"])
    meta = json.loads(body[:size])
    assert meta["id"] == "bin-1"
    labels_meta, proba_meta = meta["outputs"]
    assert "data" not in labels_meta and labels_meta["datatype"] == "BYTES"
    tail = body[size:]
    labels, pos = [], 0
    for _ in range(2):  # BYTES elements: 4-byte little-endian length, then the bytes
        (n,) = struct.unpack_from("<I", tail, pos)
        labels.append(tail[pos + 4 : pos + 4 + n].decode())
        pos += 4 + n
    assert pos == labels_meta["parameters"]["binary_data_size"]
    assert labels == ["setosa", "virginica"]
    proba = np.frombuffer(tail[pos:], dtype="<f8").reshape(2, 3)
    assert proba.nbytes == proba_meta["parameters"]["binary_data_size"]
    np.testing.assert_allclose(proba, expected_proba(), atol=1e-6)


def test_binary_nan_is_refused_with_a_message(shared: Served) -> None:
    data = np.array([[5.1, np.nan, 1.4, 0.2]], dtype="<f4")
    header = json.dumps(
        {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                     "parameters": {"binary_data_size": data.nbytes}}]}
    ).encode()  # fmt: skip
    status, _, body = post_raw(
        shared, "/v2/models/iris/infer", header + data.tobytes(),
        {"Inference-Header-Content-Length": str(len(header))},
    )  # fmt: skip
    assert status == 400
    assert "feature 'x1' row 0" in json.loads(body)["error"]


def test_triton_python_client_works_unchanged(shared: Served) -> None:
    import tritonclient.http as tritonclient  # a dev dependency: missing is a failure

    url = urlparse(shared.url)
    client = tritonclient.InferenceServerClient(url=f"{url.hostname}:{url.port}")
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("iris")
        assert client.get_model_metadata("iris")["name"] == "iris"
        X, _ = iris()
        tensor = tritonclient.InferInput("input-0", [5, 4], "FP32")
        tensor.set_data_from_numpy(X[:5])  # binary by default
        result = client.infer("iris", [tensor], request_id="triton-1")
        np.testing.assert_allclose(
            result.as_numpy("predict_proba"), fit_iris().predict_proba(X[:5]), atol=1e-6
        )
        assert [v.decode() for v in result.as_numpy("predict")] == ["setosa"] * 5
        json_tensor = tritonclient.InferInput("input-0", [1, 4], "FP64")
        json_tensor.set_data_from_numpy(X[:1].astype(np.float64), binary_data=False)
        asked = [tritonclient.InferRequestedOutput("predict_proba", binary_data=False)]
        result = client.infer("iris", [json_tensor], outputs=asked, model_version="1")
        assert result.as_numpy("predict_proba").shape == (1, 3)
        with pytest.raises(Exception, match="unknown output"):
            client.infer("iris", [json_tensor], outputs=[tritonclient.InferRequestedOutput("nope")])
    finally:
        client.close()


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v2/models/iris/infer", b"{not json", 400, "invalid JSON"),
        ("/v2/models/iris/infer", b'{"inputs": []}', 400, "at least one tensor"),
        ("/v2/models/iris/infer", b'{"inputs": [{"name": "a"}]}', 400, "shape"),
        ("/v2/models/iris/infer",  # an undeclared input name is refused, as Triton does
         b'{"inputs": [{"name": "a", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}',
         400, "input 'a': not an input of this model: expected 'input-0'"),
        ("/v2/models/iris/infer",
         b'{"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", '
         b'"data": [1, 2, 3]}]}',
         400, "expected shape [n, 4]"),
        ("/v2/models/iris/infer",
         b'{"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", '
         b'"data": [1, "x", 2, 3]}]}',
         400, "Expected float, got str"),
        ("/v2/models/iris/infer",
         b'{"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "BYTES", '
         b'"data": ["1","2","3","4"]}]}',
         400, "BYTES"),
        ("/v2/models/iris/infer",
         b'{"inputs": [{"name": "x0", "shape": [1], "datatype": "FP32", "data": [1]}]}',
         400, "missing ['x1', 'x2', 'x3']"),
        ("/v2/models/nope/infer",
         b'{"inputs": [{"name": "a", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}',
         404, "not found"),
        ("/v2/models/iris/versions/9/infer",
         b'{"inputs": [{"name": "a", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}',
         404, "version 9: not loaded"),
        ("/v2/models/iris/versions/abc/infer", b"{}", 404, "positive integer"),
        ("/v2/models/iris/nowhere", b"{}", 404, "not found"),
    ],
)  # fmt: skip
def test_bad_requests_get_4xx_with_an_error_message(
    shared: Served, path: str, body: bytes, status: int, needle: str
) -> None:
    with shared.client() as c:
        r = c.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]
    assert "Traceback" not in r.text
