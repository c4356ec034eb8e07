"""``X-Mlgate-Traffic`` marks a request as synthetic: answered and counted like any other, its
rows (and its shadow copies) logged with ``traffic`` set; a malformed tag is a 400."""

from __future__ import annotations

import time

import polars as pl

from registry.logschema import LOADTEST_TRAFFIC, TRAFFIC_COLUMN, TRAFFIC_HEADER
from tests.gateway.conftest import Served

ROW = [5.1, 3.5, 1.4, 0.2]


def _body(rid: str, rows: int = 1) -> dict[str, object]:
    return {"id": rid, "inputs": [{"name": "input-0", "shape": [rows, 4], "datatype": "FP32",
                                   "data": ROW * rows}]}  # fmt: skip


def _logged(served: Served) -> pl.DataFrame:
    files = sorted((served.logs / "predictions").rglob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal") if files else (
        pl.DataFrame()
    )  # fmt: skip


def test_tagged_requests_are_logged_as_synthetic(served: Served) -> None:
    with served.client() as c:
        real = c.post("/v2/models/iris/infer", json=_body("real-1"))
        tagged = c.post("/v2/models/iris/infer", json=_body("load-1", rows=3),
                        headers={TRAFFIC_HEADER: LOADTEST_TRAFFIC})  # fmt: skip
        headers = {TRAFFIC_HEADER: LOADTEST_TRAFFIC, "X-Request-Id": "load-2"}
        v1 = c.post("/v1/models/iris:predict", json={"instances": [ROW]}, headers=headers)
        bad = c.post("/v2/models/iris/infer", json=_body("bad-1"),
                     headers={TRAFFIC_HEADER: "load test; drop table"})  # fmt: skip
        metrics = c.get("/metrics").text
    assert real.status_code == tagged.status_code == v1.status_code == 200
    assert bad.status_code == 400 and TRAFFIC_HEADER in bad.json()["error"]
    assert 'mlgate_requests_total{model="iris"' in metrics  # counted like any other
    deadline = time.monotonic() + 30
    while _logged(served).height < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    rows = _logged(served)
    tags = dict(zip(rows["request_id"].to_list(), rows[TRAFFIC_COLUMN].to_list(), strict=True))
    assert tags["real-1"] is None
    assert [tags[f"load-1/{i}"] for i in range(3)] == [LOADTEST_TRAFFIC] * 3
    assert tags["load-2"] == LOADTEST_TRAFFIC
    assert tags.get("bad-1") is None  # refused before a version: logged untagged, if at all
