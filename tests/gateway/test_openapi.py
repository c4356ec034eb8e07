"""``GET /openapi.json``: the document lists exactly the routes the front and its Litestar app
answer, and schemathesis, pointed at a live gateway with it, gets no 5xx from any of them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.http.routes import PREDICT_ROUTES
from tests.gateway.conftest import Served

BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                    "data": [5.1, 3.5, 1.4, 0.2]}]}  # fmt: skip
METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH"}
# the front's templates whose last segment carries KServe V1's ":predict" verb
V1_DOCUMENTED = {
    "/v1/models/{spec}": "/v1/models/{model}:predict",
    "/v1/models/{model}/versions/{spec}": "/v1/models/{model}/versions/{version}:predict",
}


def _answered(served: Served) -> set[tuple[str, str]]:
    """(method, path template) of every route the server answers."""
    routes = {(r.method, V1_DOCUMENTED.get(r.template, r.template)) for r in PREDICT_ROUTES}
    for route in served.front.app.routes:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for method in getattr(route, "methods", set()) & METHODS:
            routes.add((method, path))
    return routes


def test_document_lists_every_route_and_nothing_else(served: Served) -> None:
    with served.client() as client:
        r = client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    document = r.json()
    assert document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    answered = _answered(served)
    assert ("POST", "/v2/models/{model}/infer") in answered  # the front's own routes count
    assert answered - documented == set(), "answered but not documented"
    assert documented - answered == set(), "documented but not answered"
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (method, path)
            for param in op.get("parameters", []):
                assert "{" + param["name"] + "}" in path or param["in"] != "path", path


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(served: Served, tmp_path: Path) -> None:
    """Every documented operation, its examples, the coverage phase's edge cases, fuzzed
    bodies and stateful sequences: no 5xx, and the gateway still predicts afterwards."""
    cli = Path(sys.executable).parent / "schemathesis"
    run = subprocess.run(
        [str(cli), "run", f"{served.url}/openapi.json", "--checks", "not_a_server_error",
         "--max-examples", "5", "--seed", "13", "--request-timeout", "10",
         "--max-failures", "10", "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", out)
    assert generated is not None, out[-3000:]
    assert int(generated[1]) >= 300 and generated[1] == generated[2], generated[0]
    assert re.search(r"Tested: 4\d", out), out[-3000:]  # every operation was exercised
    with served.client() as client:
        r = client.post("/v2/models/iris/infer", json=BODY)
        assert r.status_code == 200, r.text
        assert client.get("/v2/health/ready").status_code == 200
