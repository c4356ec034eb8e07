"""A monitor pass SIGKILLed at random points, then rerun to completion, queues and delivers
every alert of an uninterrupted pass exactly once: a window's summary and its alerts are
stored in one transaction (``compute_windows(on_chunk=...)``), the outbox dedupes by event."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

from monitor.alerts.outbox import REGISTRY_DESTINATION as REGISTRY
from monitor.alerts.webhooks import verify
from registry import Registry
from tests.monitor.conftest import T0_US, Logs, fit_classifier
from tests.monitor.monitor_pass import SECRET
from tests.monitor.receiver import Receiver

REPO = Path(__file__).resolve().parents[2]
KILLS = 20


def run_pass(root: Path, url: str, *, kill_after_s: float | None = None) -> bool:
    """One pass in a subprocess; SIGKILLed after ``kill_after_s`` if still running. Returns
    whether it ran to the end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.monitor.monitor_pass", str(root), url],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = process.communicate(timeout=kill_after_s)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.communicate()
        return False
    assert process.returncode == 0, err.decode()[-2000:]
    return True


def outbox(root: Path) -> list[tuple[str, bool, str]]:
    """``(alert id, for the registry's audit trail, status)`` of every message queued."""
    with duckdb.connect(str(root / "monitor.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT alert_id, endpoint = ?, status FROM outbox ORDER BY ALL", [REGISTRY]
        ).fetchall()
    return [(str(a), bool(r), str(s)) for a, r, s in rows]


def write_drifting_logs(root: Path) -> None:
    """Two models, each with segments alternating drifted and in-distribution traffic."""
    registry = Registry("file://" + str(root / "registry"))
    logs = Logs(root / "logs")
    rng = np.random.default_rng(13)
    for name in ("churn", "fraud"):
        est, ref = fit_classifier(d=4)
        mv = registry.register(name, est, reference=ref)
        for k in range(12):
            shift = 1.0 if k % 2 == 0 else 0.0
            x = rng.normal(size=(3000, 4)) + shift
            logs.predictions(mv, x, estimator=est, start_us=T0_US + k * 10**10)


def test_sigkill_at_random_points_then_rerun_delivers_every_alert_once(tmp_path: Path) -> None:
    base = tmp_path / "base"
    write_drifting_logs(base)
    reference = tmp_path / "reference"
    shutil.copytree(base, reference)
    ref_receiver = Receiver().start()
    try:
        start = time.monotonic()
        assert run_pass(reference, ref_receiver.url)
        pass_s = time.monotonic() - start
    finally:
        ref_receiver.stop()
    expected = outbox(reference)
    expected_ids = sorted(r.headers["webhook-id"] for r in ref_receiver.received)
    assert len(expected_ids) >= 8, expected  # both directions, both models, several episodes
    assert {status for *_, status in expected} == {"delivered"}

    # Episodes: a fresh copy, passes SIGKILLed at random delays until one runs to its end
    # (each killed pass leaves the next less to do, so the kills land at every stage), then
    # passes until one completes; the outbox and the receiver must match the reference.
    rng = random.Random(20261203)
    kills = episodes = resent = 0
    budget = time.monotonic() + 65
    while kills < KILLS and time.monotonic() < budget:
        episodes += 1
        killed = tmp_path / f"killed-{episodes}"
        shutil.copytree(base, killed)
        receiver = Receiver().start()
        try:
            while kills < KILLS and not run_pass(
                killed, receiver.url, kill_after_s=rng.uniform(0.5, pass_s)
            ):
                kills += 1
            while not run_pass(killed, receiver.url):  # rerun to completion
                pass
            # every alert of the uninterrupted pass is queued once (ids are per event) ...
            assert outbox(killed) == expected, episodes
            ids = [r.headers["webhook-id"] for r in receiver.received]
            # ... and delivered: a kill between a send and its "delivered" mark re-sends that
            # one message with the same webhook-id (receivers dedupe on it), never another
            assert sorted(set(ids)) == expected_ids, episodes
            resent += len(ids) - len(set(ids))
            for r in receiver.received:
                assert verify(SECRET, r.headers, r.body, now=time.time())
        finally:
            receiver.stop()
    assert kills >= KILLS // 2, (kills, episodes)
    assert resent <= kills
    print(f"pass {pass_s:.1f} s; {kills} kills in {episodes} episodes; "
          f"{len(expected_ids)} alerts each; {resent} re-sent")  # fmt: skip
