"""``mlgate serve`` killed with SIGKILL under load loses no answered prediction: every request
answered 200 is in the log exactly once after a restart (the crash journal is replayed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import polars as pl
import pytest

from registry import Registry
from tests.gateway.conftest import fit_iris
from tests.helpers import free_port, spawned_children, wait_for

BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                    "data": [5.1, 3.5, 1.4, 0.2]}]}  # fmt: skip


class Served:
    """``mlgate serve --role gateway`` as a child process on a free port."""

    def __init__(self, tmp_path: Path, *, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-c", "from mlgate.cli import main; main()", "serve",
             "--role", "gateway", "--port", str(self.port), "--workers", str(workers),
             "--grpc-port", "0",
             "--log-level", "warning", "--registry", str(tmp_path / "registry"),
             "--logs", str(tmp_path / "logs")],
            cwd=tmp_path, env={**os.environ, "MLGATE_HOME": str(tmp_path / "home")},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def ready(self) -> bool:
        assert self.process.poll() is None, self.output()
        try:
            return httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def workers(self) -> list[int]:
        """The worker processes of a multi-worker server (granian's spawned children)."""
        return spawned_children(self.process.pid)

    def output(self) -> str:
        """Everything the process printed (once it has stopped)."""
        stdout = self.process.stdout
        if stdout is None or stdout.closed:
            return ""
        with stdout:
            return stdout.read().decode(errors="replace")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.output()


class Load:
    """Client threads sending predictions; ``answered`` holds the ids of 200 answers."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.answered: list[str] = []
        self.failed = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    r = client.post("/v2/models/iris/infer", json=BODY)
                except httpx.TransportError:
                    self.failed += 1
                    time.sleep(0.01)
                    continue
                if r.status_code == 200:
                    self.answered.append(r.headers["x-request-id"])
                else:
                    self.failed += 1

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


def logged_ids(tmp_path: Path) -> Counter[str]:
    files = sorted((tmp_path / "logs" / "predictions").glob("model=iris/date=*/*.parquet"))
    frame = pl.concat([pl.read_parquet(f, columns=["request_id", "status"]) for f in files])
    return Counter(frame.filter(pl.col("status") == 200)["request_id"].to_list())


def setup(tmp_path: Path) -> None:
    Registry("file://" + str(tmp_path / "registry")).register("iris", fit_iris())
    # a flush every 500 rows: the kill lands with some rows in segments, some only journaled
    (tmp_path / "mlgate.toml").write_text(
        "[gateway]\nlog_flush_interval_s = 60.0\nlog_flush_rows = 500\n"
    )


@pytest.mark.slow
def test_sigkill_of_the_server_under_load_loses_no_answered_row(tmp_path: Path) -> None:
    setup(tmp_path)
    server = Served(tmp_path)
    load: Load | None = None
    try:
        wait_for(server.ready, 300)  # a cold start on a busy machine
        load = Load(server.url)
        wait_for(lambda: len(load.answered) >= 2_000, 120)  # type: ignore[union-attr]
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(30)
        load.close()
        answered = list(load.answered)
        assert answered
        server.output()
        server = Served(tmp_path)  # same log store: the dead worker's journal is replayed
        wait_for(server.ready, 120)
    finally:
        if load is not None:
            load.close()
        output = server.stop()
    assert "Traceback" not in output, output
    logged = logged_ids(tmp_path)
    lost = set(answered) - set(logged)
    duplicated = {i: n for i, n in logged.items() if n > 1}
    print(f"SIGKILL server: answered {len(answered)}, logged {sum(logged.values())}, "
          f"lost {len(lost)}, duplicated {len(duplicated)}")  # fmt: skip
    assert not lost
    assert not duplicated
    assert not list((tmp_path / "logs" / "_journal").glob("*.journal"))


@pytest.mark.slow
def test_sigkill_of_one_of_two_workers_loses_no_answered_row(tmp_path: Path) -> None:
    setup(tmp_path)
    server = Served(tmp_path, workers=2)
    load: Load | None = None
    try:
        wait_for(server.ready, 300)  # a cold start on a busy machine
        wait_for(lambda: len(server.workers()) == 2, 60)
        load = Load(server.url)
        wait_for(lambda: len(load.answered) >= 2_000, 120)  # type: ignore[union-attr]
        victim = server.workers()[0]
        os.kill(victim, signal.SIGKILL)
        # granian's supervisor starts a new worker, which replays the dead one's journal as it
        # starts (the other worker answers meanwhile, so readiness does not say it is done)
        wait_for(lambda: victim not in server.workers() and len(server.workers()) == 2, 120)
        journals = tmp_path / "logs" / "_journal"
        wait_for(lambda: not list(journals.glob(f"*-{victim}-*.journal")), 180)
        wait_for(server.ready, 120)
        count = len(load.answered)
        wait_for(lambda: len(load.answered) >= count + 500, 120)  # type: ignore[union-attr]
        load.close()
        answered = list(load.answered)
    finally:
        if load is not None:
            load.close()
        output = server.stop()  # graceful: the live workers flush what they hold
    assert "Traceback" not in output, output
    logged = logged_ids(tmp_path)
    lost = set(answered) - set(logged)
    duplicated = {i: n for i, n in logged.items() if n > 1}
    print(f"SIGKILL 1 of 2 workers: answered {len(answered)}, logged {sum(logged.values())}, "
          f"lost {len(lost)}, duplicated {len(duplicated)}")  # fmt: skip
    assert not lost
    assert not duplicated
