"""A retrain that would not help is rejected, over real processes and HTTP: ``mlgate serve
--role gateway`` serves version 1 and logs its traffic, ``mlgate serve --role trainer`` picks
the alert up from the registry, the gate rejects the candidate, and serving never changes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from benchmarks.proc import free_port
from registry import Registry
from tests.trainer.conftest import MODEL, champion, concept, rows
from trainer import history

CONFIG = """\
[gateway]
poll_interval_s = 0.2
log_flush_interval_s = 0.3

[trainer]
poll_interval_s = 0.3
bootstrap_rounds = 100
nice = 0
"""


def _serve(home: Path, *args: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-P", "-m", "mlgate", "serve", "--home", str(home), *args]
    with (home / f"serve-{args[1]}.log").open("wb") as out:
        return subprocess.Popen(cmd, cwd=home, env={**os.environ, "MLGATE_HOME": str(home)},
                                stdout=out, stderr=out, start_new_session=True)  # fmt: skip


def _wait(condition: object, what: str, timeout_s: float = 240.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
def test_a_worse_candidate_is_rejected_and_the_champion_keeps_serving(tmp_path: Path) -> None:
    (tmp_path / "mlgate.toml").write_text(CONFIG)
    reg = Registry(str(tmp_path / "registry"))
    champion(reg)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gateway = _serve(tmp_path, "--role", "gateway", "--port", str(port), "--grpc-port", "0")
    trainer = _serve(tmp_path, "--role", "trainer")
    failed: list[str] = []
    versions: set[str] = set()
    try:
        with httpx.Client(base_url=base, timeout=30) as http:

            def ready() -> bool:
                try:
                    return http.get("/v2/health/ready").status_code == 200
                except httpx.TransportError:
                    return False

            _wait(ready, "the gateway")

            def send(batch: int, X: np.ndarray, y: np.ndarray) -> None:
                body = {"id": f"b{batch}", "inputs": [{"name": "input-0", "shape": list(X.shape),
                                                       "datatype": "FP32",
                                                       "data": X.ravel().tolist()}]}  # fmt: skip
                r = http.post(f"/v2/models/{MODEL}/infer", json=body)
                if r.status_code != 200:
                    failed.append(r.text)
                    return
                versions.add(r.headers["x-model-version"])
                labels = [{"id": f"b{batch}/{i}", "label": int(v)} for i, v in enumerate(y)]
                r = http.post(f"/v2/models/{MODEL}/feedback", json={"labels": labels})
                if r.status_code != 200:
                    failed.append(r.text)

            X = rows(1500, seed=21).astype(np.float32)
            y = concept(X, drifted=False)  # the world has not changed: nothing to learn
            for b in range(30):
                send(b, X[b * 50 : (b + 1) * 50], y[b * 50 : (b + 1) * 50])
            logs = tmp_path / "logs"
            _wait(lambda: len(list((logs / "feedback").rglob("*.parquet"))) > 0
                  and len(list((logs / "predictions").rglob("*.parquet"))) > 0,
                  "the gateway's log segments")  # fmt: skip
            time.sleep(1.0)  # the last flush of both logs
            reg.record_event(MODEL, "model.drift.detected", version=1,
                             detail={"alert_id": "false-alarm"}, actor="monitor")  # fmt: skip
            _wait(lambda: any(r.ended for r in history(reg, MODEL)), "the trainer's run")
            run = history(reg, MODEL)[0]
            assert run.status == "rejected", run.reason
            assert run.trigger.alert_id == "false-alarm"
            assert run.rows["production"] == 1500
            assert "lower bound" in (run.reason or "")
            # the champion keeps serving, nothing else was registered or routed
            for b in range(30, 34):
                send(b, X[:50], y[:50])
        assert [mv.version for mv in reg.versions(MODEL)] == [1]
        route = reg.route(MODEL)
        assert route.champion == 1 and route.canary is None and not route.shadows
        assert versions == {"1"} and failed == []
        kinds = [e.kind for e in reg.events(MODEL)]
        assert kinds.count("trainer.run.rejected") == 1 and "rollout.started" not in kinds
    finally:
        for proc in (gateway, trainer):
            proc.send_signal(signal.SIGTERM)
        for proc in (gateway, trainer):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
