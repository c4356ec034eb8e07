"""No body, however malformed, gets a 5xx or a stack trace from a real server."""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway.conftest import Served

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.text(max_size=5),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
datatype = st.sampled_from(["FP32", "FP64", "INT64", "UINT8", "BOOL", "BYTES", "FP16", "X"])
tensor = st.fixed_dictionaries(
    {"name": st.sampled_from(["input-0", "x0", "x1", "x2", "x3", "zz"]),
     "shape": st.lists(st.integers(-1, 5), max_size=3), "datatype": datatype,
     "data": values},
    optional={"parameters": st.fixed_dictionaries({"binary_data_size": st.integers(-2, 64)})},
)  # fmt: skip
oip_bodies = st.fixed_dictionaries(
    {"inputs": st.lists(tensor, max_size=4)},
    optional={"id": values, "outputs": st.lists(
        st.fixed_dictionaries({"name": st.sampled_from(["predict", "predict_proba", "no"])}),
        max_size=3)},
)  # fmt: skip
PATHS = ["/v2/models/iris/infer", "/v1/models/iris:predict", "/invocations?model=iris"]


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()  # /invocations adds MLflow's error_code and message
        assert set(body) in ({"error"}, {"error", "error_code", "message"}), body
    assert "Traceback" not in response.text


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=oip_bodies, binary_tail=st.binary(max_size=40), use_header=st.booleans())
def test_oip_fuzz(
    shared: Served, body: dict[str, object], binary_tail: bytes, use_header: bool
) -> None:
    header = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    content = header
    if use_header:
        headers["Inference-Header-Content-Length"] = str(len(header))
        content = header + binary_tail
    with shared.client() as c:
        check(c.post("/v2/models/iris/infer", content=content, headers=headers))


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(PATHS),
    body=st.one_of(values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=60)),
    key=st.sampled_from(["instances", "inputs", "dataframe_split", "dataframe_records", None]),
    content_type=st.sampled_from(["application/json", "text/csv", "text/plain"]),
)
def test_tabular_fuzz(
    shared: Served, path: str, body: bytes, key: str | None, content_type: str
) -> None:
    if key is not None and body[:1] not in (b"{",):
        try:
            body = json.dumps({key: json.loads(body)}).encode()
        except ValueError:
            pass
    with shared.client() as c:
        check(c.post(path, content=body, headers={"Content-Type": content_type}))
