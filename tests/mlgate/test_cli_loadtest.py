"""``mlgate loadtest`` against a real ``mlgate serve`` process: rows from the model's
reference sample, a summary with req/s and latency, and traffic tagged as synthetic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mlgate import loadtest
from registry import Registry
from registry.logschema import LOADTEST_TRAFFIC, TRAFFIC_COLUMN
from tests.helpers import free_port

CLI = [sys.executable, "-P", "-c", "from mlgate.cli import main; main()"]


def test_input_specs_and_bodies_follow_the_metadata() -> None:
    specs = loadtest.input_specs(
        {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 2]}]}
    )
    rows = pl.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4.0, None, 6.0]})
    body = json.loads(loadtest.bodies(specs, rows, batch_rows=2)[0])
    assert body["inputs"] == [
        {"name": "input-0", "shape": [2, 2], "datatype": "FP32", "data": [1.0, 4.0, 2.0, None]}
    ]
    per_feature = loadtest.input_specs(
        {"inputs": [{"name": "b", "datatype": "FP64", "shape": [-1, 1]},
                    {"name": "a", "datatype": "FP64", "shape": [-1, 1]}]}
    )  # fmt: skip
    tensors = json.loads(loadtest.bodies(per_feature, rows, batch_rows=1)[0])["inputs"]
    assert [(t["name"], t["data"]) for t in tensors] == [("b", [4.0]), ("a", [1.0])]


@pytest.mark.parametrize(
    "metadata", [{}, {"inputs": []}, {"inputs": [{"shape": [-1, 2]}]}, {"inputs": "x"}]
)
def test_metadata_without_usable_inputs_is_refused(metadata: dict[str, object]) -> None:
    with pytest.raises(loadtest.LoadTestError):
        loadtest.input_specs(metadata)


def test_too_few_columns_is_refused() -> None:
    specs = [loadtest.InputSpec("input-0", "FP32", 4)]
    with pytest.raises(loadtest.LoadTestError, match="4 features"):
        loadtest.bodies(specs, pl.DataFrame({"a": [1.0]}), batch_rows=1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("loadtest")
    data = load_iris()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    X = pl.DataFrame(data.data, schema=names)
    model = LogisticRegression(max_iter=500).fit(X.to_numpy(), data.target)
    Registry(str(tmp / "registry")).register("iris", model, reference=X)
    (tmp / "mlgate.toml").write_text("[gateway]\nlog_flush_interval_s = 0.5\n")
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "serve", "--role", "gateway", "--port", str(port), "--grpc-port", "0",
         "--log-level", "warning",
         "--grpc-port", "0",
         "--registry", str(tmp / "registry"), "--logs", str(tmp / "logs")],
        cwd=tmp, env={**os.environ, "MLGATE_HOME": str(tmp / "home")},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        yield url, tmp
    finally:
        process.terminate()
        process.wait(60)
        process.stdout.close()  # type: ignore[union-attr]


@pytest.mark.slow
def test_loadtest_draws_reference_rows_and_reports(served: tuple[str, Path]) -> None:
    url, tmp = served
    done = subprocess.run(
        [*CLI, "loadtest", "iris", "--url", url, "--users", "2", "--duration", "3",
         "--registry", str(tmp / "registry"), "--format", "json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["requests"] > 20 and summary["failures"] == 0, summary
    assert summary["requests_per_s"] > 0 and summary["p50_ms"] <= summary["p99_ms"]
    assert summary["rows_from"] == "the reference sample of iris v1"

    # the log counts the traffic and marks it synthetic; the rows are the reference's rows
    def logged() -> pl.DataFrame:
        files = list((tmp / "logs" / "predictions").rglob("*.parquet"))
        return pl.concat([pl.read_parquet(f) for f in files], how="diagonal") if files else (
            pl.DataFrame()
        )  # fmt: skip

    deadline = time.monotonic() + 30
    while logged().height < summary["requests"] and time.monotonic() < deadline:
        time.sleep(0.2)
    rows = logged()
    assert rows.height >= summary["requests"]
    assert rows[TRAFFIC_COLUMN].to_list() == [LOADTEST_TRAFFIC] * rows.height
    reference = load_iris().data
    first = rows.select("in_sepal_length", "in_sepal_width").to_numpy()
    assert np.isin(first[:, 0].astype(np.float32), reference[:, 0].astype(np.float32)).all()


@pytest.mark.slow
def test_loadtest_human_output_and_errors(served: tuple[str, Path]) -> None:
    url, tmp = served
    done = subprocess.run(
        [*CLI, "loadtest", "iris", "--url", url, "--users", "1", "--duration", "2",
         "--rows", "random"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "120"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "throughput" in done.stdout and "p99" in done.stdout
    assert "req/s" in done.stderr  # the progress lines
    unknown = subprocess.run([*CLI, "loadtest", "nope", "--url", url, "--duration", "1"],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert unknown.returncode == 1 and "'nope' metadata answered 404" in unknown.stderr
    down = subprocess.run(
        [*CLI, "loadtest", "iris", "--url", "http://127.0.0.1:9", "--duration", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert down.returncode == 1 and "cannot reach" in down.stderr
