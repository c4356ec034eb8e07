"""``mlgate serve`` as a real process: serves, and on SIGTERM finishes in-flight requests and
flushes the prediction log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import polars as pl
import pytest

from registry import Registry
from tests.gateway.conftest import fit_iris
from tests.helpers import free_port

BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                    "data": [5.1, 3.5, 1.4, 0.2]}]}  # fmt: skip


@pytest.mark.slow
def test_serve_then_sigterm_loses_nothing(tmp_path: Path) -> None:
    registry = Registry("file://" + str(tmp_path / "registry"))
    registry.register("iris", fit_iris())
    port = free_port()
    (tmp_path / "mlgate.toml").write_text(
        "[gateway]\nlog_flush_interval_s = 60.0\nlog_flush_rows = 1000000\n"
    )
    env = {**os.environ, "MLGATE_HOME": str(tmp_path / "home")}
    process = subprocess.Popen(
        [sys.executable, "-P", "-c", "from mlgate.cli import main; main()", "serve",
         "--role", "gateway", "--port", str(port), "--log-level", "warning",
         "--grpc-port", str(free_port()),
         "--registry", str(tmp_path / "registry"), "--logs", str(tmp_path / "logs")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    ok: list[str] = []
    try:
        deadline = time.monotonic() + 120  # a cold start on a busy 2-core machine
        while True:
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.05)
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                while not stop.is_set():
                    try:
                        r = client.post("/v2/models/iris/infer", json=BODY)
                    except httpx.TransportError:
                        return  # the server stopped accepting
                    assert r.status_code in (200, 503), r.text
                    if r.status_code == 200:
                        ok.append(r.headers["x-request-id"])

        threads = [threading.Thread(target=traffic) for _ in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(ok) < 50:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) in (0, -signal.SIGTERM)
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        assert process.stdout is not None
        output = process.stdout.read().decode()
        process.stdout.close()
    assert "Traceback" not in output, output
    files = list((tmp_path / "logs" / "predictions").glob("model=iris/date=*/*.parquet"))
    logged = pl.concat([pl.read_parquet(f) for f in files])
    # every answered request was flushed at shutdown (the flush interval was 60 s)
    assert set(ok) <= set(logged["request_id"].to_list())


def test_serve_on_a_port_in_use_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    registry = Registry("file://" + str(tmp_path / "registry"))
    registry.register("iris", fit_iris())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-P", "-c", "from mlgate.cli import main; main()", "serve",
             "--role", "gateway", "--port", str(port),
             "--registry", str(tmp_path / "registry"), "--logs", str(tmp_path / "logs")],
            cwd=tmp_path, env={**os.environ, "MLGATE_HOME": str(tmp_path / "home")},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use"], (
        done.stderr
    )
    assert not (tmp_path / "logs").exists()  # stopped before serving anything
