"""A monitor pass SIGKILLed at random points, then rerun to completion, queues and delivers
every alert of an uninterrupted pass exactly once: a window's summary and its alerts are
stored in one transaction (``compute_windows(on_chunk=...)``), the outbox dedupes by event."""

from __future__ import annotations

import json
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
import pytest

from monitor.alerts.outbox import REGISTRY_DESTINATION as REGISTRY
from monitor.alerts.webhooks import verify
from registry import Registry
from tests.monitor.conftest import T0_US, Logs, fit_classifier
from tests.monitor.monitor_pass import SECRET
from tests.monitor.receiver import Receiver

REPO = Path(__file__).resolve().parents[2]
KILLS = 50


class Passes:
    """Monitor passes forked from one process that imported the monitor once
    (``python -m tests.monitor.monitor_pass --fork``)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.monitor.monitor_pass", "--fork"],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def run(self, root: Path, url: str, *, kill_after_s: float | None = None) -> tuple[bool, float]:
        """One pass, SIGKILLed after ``kill_after_s`` if it still runs: whether it ran to its
        end, and how long it ran."""
        assert self.process.stdin is not None and self.process.stdout is not None
        kill = "-" if kill_after_s is None else f"{kill_after_s:.6f}"
        self.process.stdin.write(f"{root} {url} {kill}\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        assert answer["code"] in (0, -signal.SIGKILL), answer  # a failed pass: see stderr
        return answer["code"] == 0, answer["seconds"]

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(30)
        self.process.stdout.close()


def outbox(root: Path) -> list[tuple[str, bool, str]]:
    """``(alert id, for the registry's audit trail, status)`` of every message queued."""
    with duckdb.connect(str(root / "monitor.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT alert_id, endpoint = ?, status FROM outbox ORDER BY ALL", [REGISTRY]
        ).fetchall()
    return [(str(a), bool(r), str(s)) for a, r, s in rows]


def write_drifting_logs(root: Path) -> None:
    """Two models, each with segments alternating drifted and in-distribution traffic: two
    drift episodes each (a small pass, so that it can be killed at many points)."""
    registry = Registry("file://" + str(root / "registry"))
    logs = Logs(root / "logs")
    rng = np.random.default_rng(13)
    for name in ("churn", "fraud"):
        est, ref = fit_classifier(d=4)
        mv = registry.register(name, est, reference=ref)
        for k in range(4):
            shift = 1.0 if k % 2 == 0 else 0.0
            x = rng.normal(size=(1000, 4)) + shift
            logs.predictions(mv, x, estimator=est, start_us=T0_US + k * 10**10)


# a pass takes ~0.5 s on a quiet 2-core machine (a fork of a process that imported the
# monitor); 50 kills and reruns take about a minute there, 20 on a machine loaded 6 times over
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sigkill_at_50_points_of_a_pass_then_rerun_delivers_every_alert_once(
    tmp_path: Path,
) -> None:
    base = tmp_path / "base"
    write_drifting_logs(base)
    passes = Passes()
    try:
        # a first pass warms what passes share (numba's kernel cache, the page cache), so
        # that the reference pass below runs as long as the killed ones would
        warm = tmp_path / "warm"
        shutil.copytree(base, warm)
        warm_receiver = Receiver().start()
        try:
            assert passes.run(warm, warm_receiver.url)[0]
        finally:
            warm_receiver.stop()
        reference = tmp_path / "reference"
        shutil.copytree(base, reference)
        ref_receiver = Receiver().start()
        try:
            done, pass_s = passes.run(reference, ref_receiver.url)
            assert done
        finally:
            ref_receiver.stop()
        expected = outbox(reference)
        expected_ids = sorted(r.headers["webhook-id"] for r in ref_receiver.received)
        assert len(expected_ids) >= 8, expected  # both directions, both models, episodes
        assert {status for *_, status in expected} == {"delivered"}

        # KILLS points spread over the pass (one in each of KILLS equal slices of its run
        # time, at random within it), each on a fresh copy: the pass killed there, then rerun
        # to its end; the outbox and the receiver must then match the uninterrupted pass's.
        # A pass that ends before its point was shorter than the reference: the point is
        # taken again at the same fraction of that pass's time, on a fresh copy.
        rng = random.Random(20261203)
        resent = missed = 0
        for k in range(KILLS):
            fraction = (k + rng.random()) / KILLS
            killed = tmp_path / f"killed-{k}"
            while True:
                shutil.rmtree(killed, ignore_errors=True)
                shutil.copytree(base, killed)
                receiver = Receiver().start()
                done, seconds = passes.run(killed, receiver.url, kill_after_s=fraction * pass_s)
                if not done:
                    break
                receiver.stop()
                missed += 1
                assert missed <= KILLS, "passes keep ending before their kill points"
                pass_s = seconds
            try:
                while not passes.run(killed, receiver.url)[0]:  # rerun to completion
                    pass
                # every alert of the uninterrupted pass is queued once (ids are per event) ...
                assert outbox(killed) == expected, k
                ids = [r.headers["webhook-id"] for r in receiver.received]
                # ... and delivered: a kill between a send and its "delivered" mark re-sends
                # that one message with the same webhook-id (receivers dedupe on it), never
                # another
                assert sorted(set(ids)) == expected_ids, k
                resent += len(ids) - len(set(ids))
                for r in receiver.received:
                    assert verify(SECRET, r.headers, r.body, now=time.time())
            finally:
                receiver.stop()
            shutil.rmtree(killed)
    finally:
        passes.close()
    assert resent <= KILLS
    print(f"pass {pass_s:.2f} s; {KILLS} kills ({missed} points retaken in a shorter pass); "
          f"{len(expected_ids)} alerts each, every one delivered; {resent} re-sent with their "
          "own webhook-id")  # fmt: skip
