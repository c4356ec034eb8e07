"""``mlgate rollout start --analysed`` and ``rollout status [--watch]`` from the command line,
and the trainer process exporting ``mlgate_rollout_*`` on ``--metrics-port``."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from mlgate.cli import app
from registry import Registry
from tests.e2e.processes import MlgateProcess, child_env, try_scrape, wait_until
from tests.helpers import free_port
from trainer.promotion import RolloutController, RolloutPlan

from .traffic import Model, Traffic


@pytest.fixture
def home(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2)).astype(np.float32)
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    reg = Registry(str(tmp_path / "registry"))
    reg.register("iris", model)
    reg.register("iris", model)
    return tmp_path


def _one_second_of_traffic(home: Path, reg: Registry) -> None:
    """100 requests in the first second of the rollout (written once that second is past)."""
    route = reg.route("iris")
    assert route.rollout is not None
    started = datetime.fromisoformat(route.rollout["started_at"].replace("Z", "+00:00"))
    wait_until(lambda: datetime.now(UTC) > started + timedelta(seconds=1), 10, "a second")
    Traffic(home / "logs", "iris", labels=False).run(route, started, 1.0, 100,
                                                     {1: Model(), 2: Model()})  # fmt: skip


def _cli(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--home", str(home)])
    return result.exit_code, result.output


def test_start_refuses_bad_input_clearly(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(home)
    code, out = _cli(home, "rollout", "start", "iris", "7", "--analysed")
    assert code == 1 and "version 7 does not exist" in out
    code, out = _cli(home, "rollout", "start", "iris", "2", "--analysed", "--plan", "stepz=[1]")
    assert code == 1 and "unknown field `stepz`" in out
    code, out = _cli(home, "rollout", "start", "iris", "2", "--analysed", "--plan", "max_wait_s=-1")
    assert code == 1 and "'max_wait_s': expected > 0" in out
    code, out = _cli(home, "rollout", "start", "iris", "2", "--plan", "max_wait_s=60")
    assert code == 1 and "--plan applies to --analysed rollouts only" in out
    (home / "mlgate.toml").write_text("[rollout]\nconfidence = 3\n")
    code, out = _cli(home, "rollout", "start", "iris", "2", "--analysed")
    assert code == 1 and "'confidence': expected a share" in out
    assert Registry(str(home / "registry")).route("iris").rollout is None


def test_start_status_and_watch(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(home)
    (home / "mlgate.toml").write_text("[rollout]\nsteps = [20, 100]\nmax_wait_s = 600\n")
    code, out = _cli(home, "rollout", "start", "iris", "2", "--analysed", "--format", "json",
                     "--gateway-timeout", "0", "--plan", "shadow_s=60")  # fmt: skip
    assert code == 0, out
    route = json.loads(out)["route"]
    assert route["rollout"]["phase"] == "shadow" and route["rollout"]["steps"] == [20.0, 100.0]
    assert route["rollout"]["plan"]["shadow_s"] == 60.0  # the flag over mlgate.toml
    reg = Registry(str(home / "registry"))
    _one_second_of_traffic(home, reg)
    code, out = _cli(home, "rollout", "status", "iris", "--format", "json")
    assert code == 0, out
    analysis = json.loads(out)["analysis"]
    assert analysis["active"] and analysis["phase"] == "shadow"
    checks = {v["check"]: v for v in analysis["decision"]["verdicts"]}
    assert checks["error_rate"]["n"] == 100 and checks["error_rate"]["outcome"] == "inconclusive"
    code, out = _cli(home, "rollout", "status", "iris")
    assert code == 0 and "error_rate" in out and "[shadow]" in out
    # --watch refreshes until the rollout ends (here: stopped by another process's controller)
    stopper = RolloutController(Registry(reg.url), str(home / "logs"))
    timer = threading.Timer(2.0, lambda: stopper.cancel("iris", reason="test over"))
    timer.start()
    started = time.monotonic()
    code, out = _cli(home, "rollout", "status", "iris", "--watch", "--every", "0.2")
    timer.join()
    assert code == 0, out
    assert time.monotonic() - started >= 1.5
    assert "no analysed rollout in progress" in out and "test over" in out
    assert reg.events("iris")[-1].kind == "rollout.aborted"


@pytest.mark.slow
def test_trainer_run_exports_rollout_metrics(home: Path) -> None:
    reg = Registry(str(home / "registry"))
    ctl = RolloutController(reg, str(home / "logs"), RolloutPlan(shadow_s=300))
    ctl.begin("iris", 2)
    _one_second_of_traffic(home, reg)
    port = free_port()
    trainer = MlgateProcess(
        "trainer",
        ["trainer", "run", "--metrics-port", str(port), "--registry", reg.url,
         "--logs", str(home / "logs")],
        env=child_env(), cwd=home, log_dir=home,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"

    def exported() -> bool:
        trainer.check_alive()
        samples = try_scrape(url) or {}
        return samples.get('mlgate_rollout_phase{model="iris",phase="shadow"}') == 1.0

    try:
        wait_until(exported, 180, "mlgate_rollout_phase from mlgate trainer run", every_s=0.5)
        samples = try_scrape(url) or {}
        key = 'mlgate_rollout_check{check="error_rate",figure="n",model="iris"}'
        assert samples[key] == 100.0
        assert samples['mlgate_rollout_check{check="latency",figure="outcome",model="iris"}'] == 0
    finally:
        trainer.stop()
