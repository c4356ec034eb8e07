"""The KServe SDK (protocol v1, v2 and gRPC) and MLflow's scoring client against a real
``mlgate serve`` process, each client unchanged, in its own interpreter (``drivers/``).

Served by the ``sklearn`` backend: every answer must equal the estimator's own exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from registry import Registry
from tests.gateway.conftest import fit_diabetes, fit_iris, iris
from tests.gateway.mlgate_process import ServedProcess, mlgate_serve

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("client_packages")]  # one server
DRIVERS = Path(__file__).resolve().parent / "drivers"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedProcess]:
    root = tmp_path_factory.mktemp("client-packages")
    registry = Registry("file://" + str(root / "registry"))
    registry.register("iris", fit_iris())
    registry.register("diabetes", fit_diabetes())
    config = '[gateway]\nbackend = "sklearn"\ndefault_model = "iris"\n'
    with mlgate_serve(root, config) as served:
        yield served


def drive(script: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Run ``drivers/<script>`` with ``cfg``; what it printed, parsed."""
    done = subprocess.run(
        [sys.executable, "-P", str(DRIVERS / script), json.dumps(cfg)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(json.loads(done.stdout.splitlines()[-1]))


@pytest.fixture(scope="module")
def kserve(server: ServedProcess) -> dict[str, Any]:
    X, _ = iris()
    cfg = {
        "http": server.http_url,
        "grpc": server.grpc_address,
        "model": "iris",
        "rows": X[::10].tolist(),  # 15 rows, all three classes
        "regressor": "diabetes",
        "regressor_rows": load_diabetes().data.astype(np.float32)[:7].tolist(),
    }
    return drive("kserve_sdk.py", cfg)


def _expected() -> tuple[np.ndarray, list[str], np.ndarray]:
    X, _ = iris()
    rows, diabetes = X[::10], load_diabetes().data.astype(np.float32)[:7]
    iris_model = fit_iris()
    labels = iris_model.predict(rows).tolist()
    return iris_model.predict_proba(rows), labels, fit_diabetes().predict(diabetes)


def test_kserve_v1(kserve: dict[str, Any]) -> None:
    v1 = kserve["v1"]
    proba, labels, regression = _expected()
    assert v1["live"] is True and v1["model_ready"] is True
    assert v1["predictions"] == labels
    np.testing.assert_array_equal(v1["regression"], regression)
    status, text = v1["explain"]
    assert status == 501 and ":predict" in text
    assert v1["unknown_model"][0] == 404 and "'nope'" in v1["unknown_model"][1]
    assert v1["bad_rows"][0] == 400 and "4" in v1["bad_rows"][1]


def test_kserve_v2(kserve: dict[str, Any]) -> None:
    v2 = kserve["v2"]
    proba, labels, regression = _expected()
    assert (v2["live"], v2["ready"], v2["model_ready"], v2["unknown_ready"]) == (
        True, True, True, False,
    )  # fmt: skip
    for form in ("json", "binary"):  # the JSON body and the binary tensor extension
        np.testing.assert_array_equal(v2[form]["predict_proba"], proba)
        assert v2[form]["predict"] == labels
    assert list(v2["only_proba"]) == ["predict_proba"]
    np.testing.assert_array_equal(v2["regression"]["predict"], regression)
    assert v2["id"] == "kserve-False"
    assert v2["bad_name"][0] == 400 and "'x': not an input of this model" in v2["bad_name"][1]
    assert v2["bad_shape"][0] == 400 and "expected shape [n, 4]" in v2["bad_shape"][1]


def test_kserve_grpc(kserve: dict[str, Any]) -> None:
    over = kserve["grpc"]
    proba, labels, regression = _expected()
    assert over["live"] is True and over["ready"] is True and over["model_ready"] is True
    for form in ("raw", "typed"):  # raw_input_contents and typed contents
        np.testing.assert_array_equal(over[form]["predict_proba"], proba)
        assert over[form]["predict"] == labels
    np.testing.assert_array_equal(over["regression"]["predict"], regression)
    assert over["model_version"] == "1"


@pytest.mark.parametrize(
    ("case", "code", "needle"),
    [
        ("unknown_model", "NOT_FOUND", "model 'nope' not found"),
        ("bad_shape", "INVALID_ARGUMENT", "expected shape [n, 4]"),
        ("bad_name", "INVALID_ARGUMENT", "'x': not an input of this model"),
        ("nan", "INVALID_ARGUMENT", "NaN"),
        ("float64_as_fp32", "INVALID_ARGUMENT", "needs 240 bytes, got binary_data_size 480"),
    ],
)
def test_kserve_grpc_bad_inputs(kserve: dict[str, Any], case: str, code: str, needle: str) -> None:
    over = kserve["grpc"]
    got_code, details = over["errors"][case]
    assert got_code == code, details
    assert needle in details
    assert over["live_after_errors"] is True


def test_mlflow_scoring_client(server: ServedProcess) -> None:
    X, _ = iris()
    rows = X[::10]
    host, port = server.http_address.split(":")
    cfg = {"host": host, "port": int(port), "columns": [f"x{j}" for j in range(4)],
           "rows": rows.tolist()}  # fmt: skip
    got = drive("mlflow_scoring.py", cfg)
    labels = fit_iris().predict(rows).tolist()
    assert got["ping"] is True and got["version"].count(".") >= 1
    assert got["frame"] == labels and got["array"] == labels
    assert "error code 400" in got["missing_column_client"]
    status, body = got["missing_column"]
    assert status == 400 and body["error_code"] == "BAD_REQUEST"
    assert "x3" in body["message"]
