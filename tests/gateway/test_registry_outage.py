"""A gateway whose S3 registry goes away under load: it keeps serving its routes, stays ready,
says so on /metrics and in its log, and picks up a change once the store is back.

The store is moto's S3 server on a fixed loopback port, stopped and started again on the same
port (moto keeps its buckets in the test process, so the registry survives the restart)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.settings import GatewaySettings
from registry import Registry
from tests.conftest import S3_ENV
from tests.e2e.processes import scrape, wait_until
from tests.gateway.conftest import fit_iris, iris, serve
from tests.helpers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.s3]

BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                    "data": [5.1, 3.5, 1.4, 0.2]}]}  # fmt: skip


class RestartableMoto:
    """moto's S3 server on one fixed port that can be stopped and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.stop()
        self.server = None


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[RestartableMoto]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    server = RestartableMoto()
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    monkeypatch.setenv("MLGATE_S3_ENDPOINT_URL", server.url)
    yield server
    if server.server is not None:
        server.stop()


def test_gateway_rides_out_an_s3_outage(
    moto: RestartableMoto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import boto3

    boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1").create_bucket(Bucket="reg")
    reg = Registry("s3://reg/registry")
    X, _ = iris()
    reg.register("iris", fit_iris(), reference=X[:50])
    settings = GatewaySettings(poll_interval_s=0.1, list_interval_s=1.0)
    statuses: list[int] = []
    versions: list[str] = []
    stop = threading.Event()
    with serve(reg, tmp_path / "logs", settings) as served:
        metrics_url = f"{served.url}/metrics"

        def traffic() -> None:
            with httpx.Client(base_url=served.url, timeout=30) as client:
                while not stop.is_set():
                    r = client.post("/v2/models/iris/infer", json=BODY)
                    statuses.append(r.status_code)
                    versions.append(r.headers.get("x-model-version", ""))

        threads = [threading.Thread(target=traffic) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: len(statuses) >= 50, 30, "traffic flows")
            assert scrape(metrics_url)["mlgate_registry_reachable"] == 1.0
            caplog.set_level(logging.WARNING, logger="gateway.models")

            moto.stop()
            served_before = len(statuses)
            wait_until(
                lambda: scrape(metrics_url)["mlgate_registry_reachable"] == 0.0,
                60,
                "the gateway reports the registry unreachable",
            )
            samples = scrape(metrics_url)
            assert samples["mlgate_registry_errors_total"] >= 1
            assert httpx.get(f"{served.url}/v2/health/ready").status_code == 200
            assert httpx.get(f"{served.url}/v2/health/live").status_code == 200
            wait_until(lambda: len(statuses) >= served_before + 50, 30, "serving goes on")
            assert any("registry poll failed" in r.getMessage() or "route_stamp" in r.getMessage()
                       for r in caplog.records)  # fmt: skip

            moto.start()  # same port, same buckets
            wait_until(
                lambda: scrape(metrics_url)["mlgate_registry_reachable"] == 1.0,
                60,
                "the gateway reaches the registry again",
            )
            v2 = reg.register("iris", fit_iris(C=0.5), reference=X[:50], promote=True).version
            wait_until(lambda: versions[-1] == str(v2), 30, "the change made after the outage")
        finally:
            stop.set()
            for t in threads:
                t.join(30)
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
