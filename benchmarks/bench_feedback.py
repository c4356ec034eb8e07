"""Predict latency while one feedback request carries a million labels, against a control.

A real ``mlgate serve`` (one worker, an iris classifier, the log store on); one client predicts
one row at a time, back to back. Each repetition: a window of predictions alone, then the same
while another process posts ``--labels`` labels in one request (the body posted from a file by
a separate interpreter, so that the poster does not share the measuring client's interpreter
lock), and, as a control, the same while a process at idle priority (what the feedback helper
runs at) only burns a core. The control says how much any background work moves this p99 on
this machine: the noise floor a helper process cannot go below.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.bench_feedback --reps 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from registry import Registry
from tests.gateway.conftest import fit_iris
from tests.gateway.mlgate_process import mlgate_serve
from tests.gateway.test_feedback import POST

ROW = [5.1, 3.5, 1.4, 0.2]
CONFIG = '[gateway]\nbackend = "sklearn"\nmax_body_bytes = 64000000\nlog_buffer_rows = 2000000\n'
BURN = "import os\nos.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nwhile True: pass\n"


def _predict(c: httpx.Client) -> float:
    start = time.perf_counter()
    r = c.post("/v1/models/iris:predict", json={"instances": [ROW]})
    assert r.status_code == 200, r.text
    return time.perf_counter() - start


def _window(c: httpx.Client, seconds: float) -> list[float]:
    out: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        out.append(_predict(c))
    return out


def _while(c: httpx.Client, process: subprocess.Popen[str]) -> list[float]:
    out: list[float] = []
    while process.poll() is None:
        out.append(_predict(c))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--labels", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="mlgate-bench-feedback-"))
    Registry("file://" + str(home / "registry")).register("iris", fit_iris())
    body = home / "labels.json"
    labels = [{"id": f"id-{i}", "label": "setosa"} for i in range(args.labels)]
    body.write_bytes(json.dumps({"labels": labels}).encode())
    del labels
    print(f"load average at start: {os.getloadavg()}")
    print("| rep | p99 alone ms | p99 during the feedback post ms | ratio | post s | "
          "p99 alone ms | p99 beside an idle-priority busy loop ms | control ratio |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    ratios, controls = [], []
    with mlgate_serve(home, CONFIG) as served, httpx.Client(base_url=served.http_url) as c:
        _window(c, 1.0)  # warm up, and start the feedback helper with a small request
        c.post("/v2/models/iris/feedback", json={"labels": [{"id": "x", "label": "setosa"}]})
        for rep in range(args.reps):
            url = f"{served.http_url}/v2/models/iris/feedback"
            poster = subprocess.Popen([sys.executable, "-c", POST, url, str(body)],
                                      stdout=subprocess.PIPE, text=True)  # fmt: skip
            started = time.perf_counter()
            during = _while(c, poster)
            took = time.perf_counter() - started
            answer = json.loads(poster.communicate()[0])
            assert answer["accepted"] == args.labels, answer
            alone = _window(c, took)
            burner = subprocess.Popen([sys.executable, "-c", BURN])
            time.sleep(0.2)
            beside = _window(c, took)
            burner.kill()
            burner.wait()
            alone2 = _window(c, took)
            a, d = np.percentile(alone, 99) * 1e3, np.percentile(during, 99) * 1e3
            a2, b = np.percentile(alone2, 99) * 1e3, np.percentile(beside, 99) * 1e3
            ratios.append(d / a)
            controls.append(b / a2)
            print(f"| {rep} | {a:.1f} | {d:.1f} | {d / a:.2f} | {took:.2f} | {a2:.1f} | {b:.1f} "
                  f"| {b / a2:.2f} |")  # fmt: skip
    print(f"median ratio during/alone {np.median(ratios):.2f}; control {np.median(controls):.2f}")
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
