"""``GET /openapi.json``: the document lists exactly the routes the front and its Litestar app
answer, and schemathesis, pointed at a live gateway with it, gets no 5xx from any of them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.http.routes import PREDICT_ROUTES
from gateway.settings import GatewaySettings
from registry import Registry
from tests.gateway.conftest import Served, serve

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


def _schemathesis(url: str, report: Path, *options: str) -> str:
    """Run schemathesis on ``url``'s document (every phase, small budget); its output."""
    cli = Path(sys.executable).parent / "schemathesis"
    run = subprocess.run(
        [str(cli), "run", f"{url}/openapi.json", "--checks", "not_a_server_error",
         "--max-examples", "5", "--seed", "13", "--request-timeout", "10",
         "--max-failures", "10", "--report", "junit", "--report-dir", str(report), *options],
        capture_output=True, text=True, timeout=120, cwd=report,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", out)
    assert generated is not None, out[-3000:]
    assert generated[1] == generated[2], generated[0]
    return out


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(registry: Registry, tmp_path: Path) -> None:
    """Every documented operation, its examples, the coverage phase's edge cases, fuzzed
    bodies and stateful sequences: no 5xx; then the admin API with its token (which changes
    the route at random, so it runs last); and the gateway still predicts afterwards."""
    settings = GatewaySettings(poll_interval_s=0.05, log_flush_interval_s=0.2,
                               admin_token="secret")  # fmt: skip
    with serve(registry, tmp_path / "logs", settings) as served:
        out = _schemathesis(served.url, tmp_path)
        assert re.search(r"Tested: 4\d", out), out[-3000:]  # every operation was exercised
        assert int(re.search(r"(\d+) generated", out)[1]) >= 300  # type: ignore[index]
        admin = _schemathesis(served.url, tmp_path, "--include-path-regex", "^/admin/",
                              "-H", "Authorization: Bearer secret")  # fmt: skip
        assert re.search(r"Tested: 1\d", admin), admin[-3000:]
        with served.client(headers={"Authorization": "Bearer secret"}) as client:
            assert client.get("/v2/health/live").status_code == 200
            # the fuzzer set routes at random: put the champion back and predict
            r = client.put("/admin/models/iris/route", json={"champion": 1})
            assert r.status_code == 200, r.text
            served.wait_for(lambda: client.get("/v2/health/ready").status_code == 200)
            r = client.post("/v2/models/iris/infer", json=BODY)
            assert r.status_code == 200, r.text


def test_rollout_status_window_past_a_year_is_a_400(shared: Served) -> None:
    """Found by schemathesis: window_s=1.8e308 was a 500 (OverflowError)."""
    with shared.client(headers={"Authorization": "Bearer secret"}) as client:
        for window in ("1.7976931348623157e308", "inf", "nan", "0", "31700000"):
            r = client.get("/admin/models/iris/rollout/status", params={"window_s": window})
            assert r.status_code == 400, (window, r.status_code, r.text)
            assert "window_s" in r.json()["error"]
        r = client.get("/admin/models/iris/rollout/status", params={"window_s": "60"})
        assert r.status_code == 200, r.text
