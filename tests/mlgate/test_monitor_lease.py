"""Two ``mlgate monitor run`` processes on one registry and log store: only the lease holder
reads segments; a clean stop hands over at once, a crash after the lease's ttl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from mlgate.cli import app
from registry import Lease, Registry
from tests.e2e.processes import (
    MlgateProcess,
    child_env,
    total,
    try_scrape,
    wait_until,
)
from tests.helpers import free_port
from tests.monitor.conftest import Logs, fit_classifier

SEGMENTS = 4
TTL_S = 3.0


def _monitor(name: str, home: Path, registry: Path, logs: Path, tmp: Path) -> tuple[Any, str]:
    port = free_port()
    args = ["monitor", "run", "--interval", "0.2", "--lease-ttl", str(TTL_S),
            "--metrics-port", str(port), "--home", str(home),
            "--registry", str(registry), "--logs", str(logs)]  # fmt: skip
    proc = MlgateProcess(name, args, env=child_env(), cwd=tmp, log_dir=tmp)
    return proc, f"http://127.0.0.1:{port}/metrics"


def _held(url: str) -> bool:
    samples = try_scrape(url)
    return samples is not None and samples.get("mlgate_monitor_lease_held") == 1.0


@pytest.mark.slow
def test_a_second_monitor_stands_by_and_takes_over(tmp_path: Path) -> None:
    registry, logs = tmp_path / "registry", tmp_path / "logs"
    reg = Registry(str(registry))
    est, ref = fit_classifier(d=4)
    mv = reg.register("churn", est, reference=ref)
    rng = np.random.default_rng(0)
    writer = Logs(logs)
    for i in range(SEGMENTS):
        writer.predictions(mv, rng.normal(size=(300, 4)), estimator=est,
                           start_us=1_764_000_000_000_000 + i * 10**9)  # fmt: skip

    a, a_url = _monitor("monitor-a", tmp_path / "home-a", registry, logs, tmp_path)
    b = None
    try:
        wait_until(lambda: _held(a_url), 120, "monitor a holds the lease")
        wait_until(
            lambda: (
                total(try_scrape(a_url) or {}, "mlgate_monitor_segments_total", outcome="ok")
                == SEGMENTS
            ),
            60,
            "monitor a read every segment",
        )
        b, b_url = _monitor("monitor-b", tmp_path / "home-b", registry, logs, tmp_path)
        wait_until(lambda: try_scrape(b_url) is not None, 120, "monitor b serves /metrics")
        # b is up and its keeper has tried the lease; let a finish several more passes
        passes = total(try_scrape(a_url) or {}, "mlgate_monitor_passes_total", outcome="ok")
        wait_until(
            lambda: (
                total(try_scrape(a_url) or {}, "mlgate_monitor_passes_total", outcome="ok")
                >= passes + 5
            ),
            30,
            "monitor a keeps working",
        )
        b_samples = try_scrape(b_url) or {}
        assert b_samples["mlgate_monitor_lease_held"] == 0.0
        assert total(b_samples, "mlgate_monitor_passes_total") == 0.0
        assert total(b_samples, "mlgate_monitor_segments_total") == 0.0  # nothing read twice
        assert "standing by; lease 'monitor': held by" in b.output()

        # a clean stop releases the lease: b takes over well before the ttl
        assert a.stop() == 0
        took = wait_until(lambda: _held(b_url), TTL_S, "monitor b takes over after a's stop")
        assert took < TTL_S
        record = Lease(reg, "monitor").current()
        assert record is not None and record.term == 2

        # a crash leaves the lease to expire: a restarted monitor waits, then takes over
        a, a_url = _monitor("monitor-a2", tmp_path / "home-a", registry, logs, tmp_path)
        wait_until(lambda: try_scrape(a_url) is not None, 120, "monitor a2 serves /metrics")
        assert not _held(a_url)
        b.kill()
        took = wait_until(lambda: _held(a_url), TTL_S * 3, "monitor a2 takes over after b died")
        assert took <= TTL_S + TTL_S / 3 + 1.0
        record = Lease(reg, "monitor").current()
        assert record is not None and record.term == 3
    finally:
        a.stop()
        if b is not None and b.alive():
            b.stop()


def test_once_is_refused_while_another_monitor_holds_the_lease(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    reg = Registry(str(registry))
    est, ref = fit_classifier(d=4)
    reg.register("churn", est, reference=ref)
    other = Lease(reg, "monitor", holder="elsewhere-1")
    assert other.acquire()
    runner = CliRunner()
    args = ["monitor", "run", "--once", "--home", str(tmp_path / "home"),
            "--registry", str(registry), "--logs", str(tmp_path / "logs")]  # fmt: skip
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1
    assert "another monitor is running (lease 'monitor': held by elsewhere-1" in refused.output
    assert other.release()
    ran = runner.invoke(app, args)
    assert ran.exit_code == 0, ran.output
    record = other.current()
    assert record is not None and record.expires_at == 0.0  # --once released it again
