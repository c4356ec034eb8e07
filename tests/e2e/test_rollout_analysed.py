"""Analysed rollouts against a real ``mlgate serve`` process over HTTP.

One gateway serves four models from one registry and log store; each test streams traffic
(and delayed labels through ``/v2/models/{m}/feedback``) at it while ``mlgate rollout start
--analysed --wait`` drives the rollout from its own process:

- a clearly better candidate goes shadow -> 10 -> 50 -> 100 % -> champion;
- a candidate that fails requests, or is slow, as the canary is rolled back on its own, with
  the failing figure in the event;
- with too little traffic the rollout waits (inconclusive), never passes, and is aborted
  after ``max_wait_s``.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from registry import Registry, gateway_states
from tests.e2e.processes import CLI, MlgateProcess, child_env, wait_until
from tests.helpers import free_port

# one gateway serves the module: keep its tests on one xdist worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("rollout_analysed")]

# small figures so that each test takes seconds; the analysis itself is the real one
FAST = [
    "shadow_s=4", "shadow_requests=100000", "step_interval_s=4", "step_min_requests=15",
    "analysis_interval_s=1", "label_maturity_s=3", "min_labelled=30",
    "min_baseline_requests=40", "max_wait_s=90",
]  # fmt: skip
NO_SHADOW = ["shadow_percent=0", "shadow_s=0", "shadow_requests=0"]


def _iris() -> tuple[np.ndarray, np.ndarray]:
    data = load_iris()
    return data.data.astype(np.float32), data.target_names[data.target]


@dataclass
class Server:
    url: str
    home: Path
    registry: Registry
    process: MlgateProcess

    def cli(self, *args: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args, "--registry", self.registry.url, "--logs", str(self.home / "logs")],
            cwd=self.home, env=child_env(), capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("analysed")
    X, y = _iris()
    rng = np.random.default_rng(3)
    reg = Registry(str(home / "registry"))
    poor = LogisticRegression(max_iter=500).fit(X, rng.permutation(y))  # ~40 % accurate
    good = LogisticRegression(max_iter=500).fit(X, y)  # ~97 % accurate
    from tests.e2e.rollout_models import FlakyClassifier, SlowClassifier

    flaky = "tests.e2e.rollout_models.FlakyClassifier"
    slow = "tests.e2e.rollout_models.SlowClassifier"
    for name in ("better", "flaky", "slow", "quiet"):
        reg.register(name, good if name != "better" else poor)
    reg.register("better", good)
    reg.register("flaky", FlakyClassifier().fit(X, y), trusted_types=[flaky])
    reg.register("slow", SlowClassifier().fit(X, y), trusted_types=[slow])
    reg.register("quiet", good)
    (home / "mlgate.toml").write_text(
        "[gateway]\nlog_flush_interval_s = 0.3\npoll_interval_s = 0.5\n"
    )
    port = free_port()
    process = MlgateProcess(
        "serve",
        ["serve", "--role", "gateway", "--port", str(port), "--grpc-port", "0",
         "--log-level", "warning", "--registry", reg.url, "--logs", str(home / "logs")],
        env=child_env(MLGATE_HOME=str(home / "home")), cwd=home, log_dir=home,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        process.check_alive()
        try:
            return httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, 300, "mlgate serve ready")
        yield Server(url, home, reg, process)
    finally:
        process.stop()


@dataclass
class Stream:
    """Requests at ``rate`` per second on one thread, labels sent ``label_delay_s`` later."""

    url: str
    model: str
    rate: float
    labels: bool = True
    label_delay_s: float = 1.0
    answered: int = 0
    failed: dict[int, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Stream:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        X, y = _iris()
        rng = np.random.default_rng(11)
        pending: list[tuple[float, str, str]] = []
        with httpx.Client(base_url=self.url, timeout=10) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                i = int(rng.integers(len(X)))
                rid = uuid.uuid4().hex
                body: dict[str, Any] = {
                    "id": rid,
                    "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                                "data": X[i].tolist()}],
                }  # fmt: skip
                r = client.post(f"/v2/models/{self.model}/infer", json=body,
                                headers={"X-Routing-Key": rid})  # fmt: skip
                if r.status_code == 200:
                    self.answered += 1
                    version = r.headers["X-Model-Version"]
                    self.versions[version] = self.versions.get(version, 0) + 1
                    pending.append((time.monotonic(), rid, str(y[i])))
                else:
                    self.failed[r.status_code] = self.failed.get(r.status_code, 0) + 1
                due = [p for p in pending if time.monotonic() - p[0] >= self.label_delay_s]
                if self.labels and due:
                    labels = [{"id": rid, "label": label} for _, rid, label in due]
                    client.post(f"/v2/models/{self.model}/feedback", json={"labels": labels})
                pending = [p for p in pending if time.monotonic() - p[0] < self.label_delay_s]
                next_at += 1.0 / self.rate
                self._stop.wait(max(0.0, next_at - time.monotonic()))


def _rollout_events(reg: Registry, model: str) -> list[Any]:
    return [e for e in reg.events(model) if e.kind.startswith("rollout.")]


def test_a_better_candidate_is_promoted(server: Server) -> None:
    with Stream(server.url, "better", rate=30) as stream:
        wait_until(lambda: stream.answered >= 30, 60, "first answers")
        started = time.monotonic()
        done = server.cli("rollout", "start", "better", "2", "--analysed", "--wait",
                          "--format", "json", *[f"--plan={p}" for p in FAST])  # fmt: skip
        took = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    final = json.loads(done.stdout)
    route = server.registry.route("better")
    assert route.champion == 2 and route.canary is None and route.shadows == []
    kinds = [e.kind for e in _rollout_events(server.registry, "better")]
    assert kinds == ["rollout.started", "rollout.canary", "rollout.step", "rollout.step",
                     "rollout.promoted"]  # fmt: skip
    promoted = _rollout_events(server.registry, "better")[-1]
    checks = {c["check"]: c for c in promoted.detail["checks"]}
    assert checks["labelled"]["outcome"] == "pass" and checks["labelled"]["effect"] > 0.2
    assert checks["error_rate"]["outcome"] == "pass" and checks["latency"]["outcome"] == "pass"
    assert final["events"][-1]["kind"] == "rollout.promoted"
    assert stream.failed == {}, stream.failed  # 0 failed requests through the whole rollout
    assert stream.versions.get("2", 0) > 0  # the candidate answered as canary
    assert took < 180, took


def test_an_erroring_canary_is_rolled_back(server: Server) -> None:
    with Stream(server.url, "flaky", rate=30, labels=False) as stream:
        wait_until(lambda: stream.answered >= 30, 60, "first answers")
        done = server.cli("rollout", "start", "flaky", "2", "--analysed", "--wait",
                          *[f"--plan={p}" for p in FAST + NO_SHADOW])  # fmt: skip
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rollout.rolled_back" in done.stdout
    route = server.registry.route("flaky")
    assert route.champion == 1 and route.canary is None and route.rollout is None
    last = _rollout_events(server.registry, "flaky")[-1]
    assert last.kind == "rollout.rolled_back" and last.detail["phase"] == "canary"
    failed = {c["check"]: c for c in last.detail["failed"]}
    assert "error_rate" in failed
    assert failed["error_rate"]["interval"][0] > 0.01 and failed["error_rate"]["n"] > 0
    assert stream.failed.get(500, 0) > 0  # it really failed requests as the canary
    # once the gateway has applied the rolled-back route (its next poll, poll_interval_s
    # later: the CLI can return before it), every answer comes from the champion again
    wait_until(
        lambda: (
            [g.generation for g in gateway_states(server.registry, "flaky")] == [route.generation]
        ),
        30,
        "the gateway on the rolled-back route",
    )
    after = Stream(server.url, "flaky", rate=50, labels=False)
    with after:
        wait_until(lambda: after.answered >= 30, 60, "answers after the rollback")
    assert set(after.versions) == {"1"} and after.failed == {}


def test_a_slow_canary_is_rolled_back(server: Server) -> None:
    with Stream(server.url, "slow", rate=30, labels=False) as stream:
        wait_until(lambda: stream.answered >= 30, 60, "first answers")
        plan = [f"--plan={p}" for p in FAST + NO_SHADOW]
        done = server.cli("rollout", "start", "slow", "2", "--analysed", "--wait", *plan)
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    last = _rollout_events(server.registry, "slow")[-1]
    assert last.kind == "rollout.rolled_back"
    latency = next(c for c in last.detail["failed"] if c["check"] == "latency")
    assert latency["figures"]["candidate_ms"] > 40 and latency["effect"] > 1.5
    assert server.registry.route("slow").champion == 1


def test_too_little_traffic_waits_then_aborts(server: Server) -> None:
    plan = [p for p in FAST if not p.startswith("max_wait_s")] + ["max_wait_s=15"]
    with Stream(server.url, "quiet", rate=1, labels=False):
        status_seen: list[dict[str, Any]] = []

        def poll() -> None:
            time.sleep(8)
            shown = server.cli("rollout", "status", "quiet", "--format", "json", timeout_s=60)
            if shown.returncode == 0:
                status_seen.append(json.loads(shown.stdout))

        poller = threading.Thread(target=poll)
        poller.start()
        done = server.cli("rollout", "start", "quiet", "2", "--analysed", "--wait",
                          *[f"--plan={p}" for p in plan])  # fmt: skip
        poller.join()
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    kinds = [e.kind for e in _rollout_events(server.registry, "quiet")]
    assert kinds == ["rollout.started", "rollout.aborted"]  # never passed a phase
    last = _rollout_events(server.registry, "quiet")[-1]
    assert last.detail["elapsed_s"] >= 15 and last.detail["inconclusive"]
    route = server.registry.route("quiet")
    assert route.champion == 1 and route.shadows == [] and route.rollout is None
    # mid-rollout, status showed the analysis waiting on evidence
    assert status_seen, "rollout status did not answer"
    analysis = status_seen[0]["analysis"]
    assert analysis["active"] and analysis["phase"] == "shadow"
    assert analysis["decision"]["action"] == "wait"
    outcomes = {v["check"]: v["outcome"] for v in analysis["decision"]["verdicts"]}
    assert "inconclusive" in outcomes.values() and "fail" not in outcomes.values()
