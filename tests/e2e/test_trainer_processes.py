"""Trainers as real processes (``mlgate trainer run``) on one registry: one alert makes one
run; a trainer SIGKILLed while it registers leaves no visible version, and the run is taken
up once by the next trainer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry import Registry
from tests.trainer.conftest import MODEL, champion, concept, rows, write_traffic
from trainer import history

CONFIG = """\
[trainer]
poll_interval_s = 0.3
lease_s = 3
rollout = false
bootstrap_rounds = 100
"""


def _trainer(root: Path, reg: Registry, logs: Path, **env: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-P", "-m", "mlgate", "trainer", "run", "--registry", reg.url,
           "--logs", str(logs)]  # fmt: skip
    with (root / f"trainer-{time.monotonic_ns()}.log").open("wb") as out:
        return subprocess.Popen(cmd, cwd=root, env={**os.environ, **env}, stdout=out,
                                stderr=out, start_new_session=True)  # fmt: skip


# a trainer whose registry stops at the commit point of a new version (the manifest not yet
# written) and waits there to be killed; ``Registry(before_commit=...)`` is the hook
HOLDING_TRAINER = """
import os, pathlib, sys, threading, time
from registry import Registry
from trainer import TrainerService, context
hold = pathlib.Path(sys.argv[1])
def held():
    (hold / f"held-{os.getpid()}").write_text("")
    time.sleep(3600)
reg = Registry(sys.argv[2], before_commit=held)
TrainerService(context(reg, logs=sys.argv[3])).run(threading.Event())
"""


def _holding_trainer(root: Path, reg: Registry, logs: Path, hold: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-P", "-c", HOLDING_TRAINER, str(hold), reg.url, str(logs)]
    with (root / f"trainer-held-{time.monotonic_ns()}.log").open("wb") as out:
        return subprocess.Popen(cmd, cwd=root, stdout=out, stderr=out, start_new_session=True)


def _wait(condition: object, what: str, timeout_s: float = 240.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Registry, Path]:
    (tmp_path / "mlgate.toml").write_text(CONFIG)
    reg = Registry(str(tmp_path / "registry"))
    champion(reg)
    logs = tmp_path / "logs"
    X = rows(1500, seed=7)
    write_traffic(logs, X, concept(X, drifted=True))
    return tmp_path, reg, logs


def _alert(reg: Registry, alert_id: str) -> None:
    reg.record_event(MODEL, "model.drift.detected", version=1,
                     detail={"alert_id": alert_id}, actor="monitor")  # fmt: skip


@pytest.mark.slow
def test_two_trainer_processes_make_one_run_for_one_alert(setup) -> None:
    root, reg, logs = setup
    procs = [_trainer(root, reg, logs), _trainer(root, reg, logs)]
    try:
        _alert(reg, "alert-1")
        _wait(lambda: any(r.ended for r in history(reg, MODEL)), "the run to end")
        time.sleep(2.0)  # several more polls of both trainers: still one run
        runs = history(reg, MODEL)
        assert len(runs) == 1, [(r.run_id, r.owner) for r in runs]
        assert runs[0].status == "registered" and runs[0].trigger.alert_id == "alert-1"
        assert [mv.version for mv in reg.versions(MODEL)] == [1, 2]
        started = [e for e in reg.events(MODEL) if e.kind == "trainer.run.started"]
        assert len(started) == 1
    finally:
        _stop(*procs)


@pytest.mark.slow
def test_sigkill_while_registering_leaves_no_version_and_one_rerun(setup) -> None:
    root, reg, logs = setup
    hold = root / "hold"
    hold.mkdir()
    first = _holding_trainer(root, reg, logs, hold)
    second = None
    try:
        _alert(reg, "alert-kill")
        _wait(lambda: any(hold.glob("held-*")), "the first trainer to reach the commit point")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        # artifact written, manifest not: no reader sees a version 2
        assert [mv.version for mv in reg.versions(MODEL)] == [1]
        assert reg.route(MODEL).champion == 1
        second = _trainer(root, reg, logs)
        _wait(lambda: any(r.status == "registered" for r in history(reg, MODEL)),
              "the second trainer to take the run over")  # fmt: skip
        time.sleep(4.0)  # past another lease period: no third attempt
        runs = history(reg, MODEL)
        assert [r.status for r in runs] == ["failed", "registered"], [r.reason for r in runs]
        assert "abandoned" in (runs[0].reason or "")
        assert runs[1].attempt == 2 and runs[1].trigger.alert_id == "alert-kill"
        versions = [mv.version for mv in reg.versions(MODEL)]
        assert len(versions) == 2 and versions[0] == 1
        assert reg.get(MODEL, versions[1]).lineage.run_id == runs[1].run_id
    finally:
        _stop(first, *([second] if second else []))
