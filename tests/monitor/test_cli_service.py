"""``mlgate monitor run|report`` and the background service."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mlgate.cli import app
from monitor import Monitor, MonitorConfig, MonitorService, PassResult
from registry import Registry
from tests.helpers import wait_for
from tests.monitor.conftest import Logs, fit_classifier


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("MLGATE_HOME", "MLGATE_REGISTRY", "MLGATE_LOGS", "MLGATE_WEBHOOK_URL"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    reg = Registry(str(home / "registry"))
    est, ref = fit_classifier(d=4)
    mv = reg.register("churn", est, reference=ref)
    rng = np.random.default_rng(0)
    logs = Logs(home / "logs")
    logs.predictions(mv, rng.normal(size=(2000, 4)), estimator=est)
    x = rng.normal(size=(2000, 4))
    x[:, 2] += 2.0
    logs.predictions(mv, x, estimator=est, start_us=1_764_100_000_000_000)
    return home


def test_run_once_then_report_in_every_format(home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ran = runner.invoke(app, ["monitor", "run", "--once", "--home", str(home),
                              "--format", "json"])  # fmt: skip
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output)["windows"] == 4
    again = runner.invoke(app, ["monitor", "run", "--once", "--home", str(home)])
    assert again.exit_code == 0 and "pass: 0 segment(s), 0 row(s), 0 window(s)" in again.output
    out = runner.invoke(
        app, ["monitor", "report", "churn", "--home", str(home), "--format", "json"]
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert set(doc) >= {
        "model",
        "version",
        "window",
        "features",
        "prediction",
        "performance",
        "share_drifted",
        "dataset_drift",
    }
    assert set(doc["window"]) >= {"start", "end", "rows"}
    assert set(doc["features"][0]) >= {
        "name",
        "kind",
        "psi",
        "ks",
        "ks_pvalue",
        "wasserstein",
        "js",
        "chi2",
        "chi2_pvalue",
        "null_rate",
        "unseen_share",
        "drifted",
    }
    assert [f["name"] for f in doc["features"] if f["drifted"]] == ["f02"]
    history = runner.invoke(
        app,
        ["monitor", "report", "churn", "--home", str(home), "--format", "json", "--window", "all"],
    )
    assert [w["window"]["seq"] for w in json.loads(history.output)["windows"]] == [1, 2, 3, 4]
    table = runner.invoke(app, ["monitor", "report", "churn", "--home", str(home)])
    assert table.exit_code == 0 and "f02" in table.output and "share drifted" in table.output
    page = tmp_path / "report.html"
    html = runner.invoke(
        app,
        ["monitor", "report", "churn", "--home", str(home), "--format", "html", "--out", str(page)],
    )
    assert html.exit_code == 0, html.output
    text = page.read_text()
    assert text.startswith("<!doctype html>") and text.count("<svg") >= 6
    # self-contained: one inline script (sorting the summary), nothing fetched from anywhere
    assert text.count("<script") == 1 and "<script src" not in text
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text
    missing = runner.invoke(
        app, ["monitor", "report", "nope", "--home", str(home), "--format", "json"]
    )
    assert missing.exit_code == 1 and "'nope'" in missing.output  # not registered
    bad_route = runner.invoke(app, ["monitor", "report", "churn", "--home", str(home),
                                    "--route", "bogus"])  # fmt: skip
    assert bad_route.exit_code == 1 and "--route" in bad_route.output


def test_report_before_any_run_fails_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["monitor", "report", "churn", "--home", str(tmp_path)])
    assert out.exit_code == 1 and "monitor run --once" in out.output


def _monitor(home: Path) -> Monitor:
    return Monitor(
        Registry(str(home / "registry")),
        str(home / "logs"),
        db=home / "monitor.duckdb",
        config=MonitorConfig(),
    )


class ThreadRecordingMonitor(Monitor):
    """A real monitor that remembers which thread ran each pass."""

    threads: list[int]

    def run_once(self) -> PassResult:
        self.threads.append(threading.get_ident())
        return super().run_once()


def test_service_runs_passes_off_the_event_loop(home: Path) -> None:
    monitor = ThreadRecordingMonitor(
        Registry(str(home / "registry")), str(home / "logs"), db=home / "monitor.duckdb"
    )
    monitor.threads = []

    async def main() -> MonitorService:
        service = MonitorService(monitor, interval_s=0.05)
        await service.start()
        loop_thread = threading.get_ident()
        ticks = 0
        deadline = time.monotonic() + 30
        while service.passes < 2:  # the loop stays responsive while passes run
            await asyncio.sleep(0.01)
            ticks += 1
            assert time.monotonic() < deadline
        assert ticks > 1 and monitor.threads
        assert loop_thread not in monitor.threads  # every pass ran on a worker thread
        await service.aclose()
        return service

    service = asyncio.run(main())
    assert service.failures == 0 and service.last is not None


def test_blocking_run_stops_on_event(home: Path) -> None:
    service = MonitorService(_monitor(home), interval_s=0.05)
    stop = threading.Event()
    worker = threading.Thread(target=service.run, args=(stop,))
    worker.start()
    wait_for(lambda: service.passes >= 1)
    stop.set()
    worker.join(30)
    assert not worker.is_alive() and service.failures == 0


def test_report_waits_for_a_monitor_process_to_release_the_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    from monitor.store import MonitorStore, StoreBusy

    db = tmp_path / "monitor.duckdb"
    with subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from monitor.store import MonitorStore;"
         f" s = MonitorStore({str(db)!r}); print('ready', flush=True); sys.stdin.readline();"
         " s.release()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
    ) as holder:  # fmt: skip
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
            with pytest.raises(StoreBusy, match="held by another process"):
                MonitorStore(db, read_only=True, wait_s=0.2)
            assert holder.stdin is not None
            holder.stdin.write("go\n")
            holder.stdin.close()
            reader = MonitorStore(db, read_only=True, wait_s=30.0)  # waits for the release
            assert reader.con.execute("SELECT count(*) FROM windows").fetchone() == (0,)
            reader.close()
        finally:
            holder.kill()
