"""The benchmark harness's own logic: report files, CPU accounting, process handling."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from benchmarks import bench_report, workload, wrk_load
from benchmarks.http_bench import Point
from benchmarks.load_result import LoadResult
from benchmarks.proc import ServerProcess, descendants, free_port, tree_cpu_seconds


def test_write_section_creates_file_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    bench_report.write_section(path, "HTTP serving", "table one\n")
    assert path.read_text() == "# Benchmark results\n\n## HTTP serving\n\ntable one\n"


def test_write_section_replaces_only_its_own_section(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text(
        "# Results\n\n## Kernels\n\nkernel table\n\n## HTTP serving\n\nold\nolder\n\n"
        "## Monitor\n\nmonitor table\n"
    )
    bench_report.write_section(path, "HTTP serving", "new")
    assert path.read_text() == (
        "# Results\n\n## Kernels\n\nkernel table\n\n## HTTP serving\n\nnew\n\n"
        "## Monitor\n\nmonitor table\n"
    )
    bench_report.write_section(path, "Extra", "x")
    assert path.read_text().endswith("monitor table\n\n## Extra\n\nx\n")


def _result(rps: float, p50: float, p99: float) -> LoadResult:
    return LoadResult("wrk", int(rps * 10), 10.0, 0, 0, p50, p99, p50, p99)


def test_targets_check_computes_the_issue_ratios() -> None:
    points = [
        Point("mlgate", "c=1", _result(2000, 0.8, 2.0)),
        Point("mlgate", "c=64", _result(12000, 4.0, 30.0), cpu_s=12.0, wall_s=10.0),
        Point("mlgate-nobatch", "c=64", _result(3000, 20.0, 60.0)),
        Point("mlserver", "c=64", _result(1000, 60.0, 180.0), cpu_s=10.0, wall_s=10.0),
    ]
    lines = bench_report.targets_check(points)
    assert "= 12.0× (target ≥ 10×): **met**" in lines[0]
    assert "mlgate 0.10 ms vs MLServer 1.00 ms = 10.0× less" in lines[1]
    assert "= 0.17 of it (target ≤ 0.20): **met**" in lines[2]
    assert "0.80 ms (target ≤ 1 ms): **met**" in lines[3]
    assert "(4.0×)" in lines[4]


def test_table_keeps_failures_on_one_line() -> None:
    text = bench_report.table([Point("x", "start", note="not run: a | b\nlog line")])
    last = text.splitlines()[-1]
    assert last == "| x | start | not run: a \\| b log line |" + " – |" * 11
    assert last.count(" |") == text.splitlines()[0].count(" |")


def test_parse_wrk_output_rejects_output_without_result() -> None:
    with pytest.raises(ValueError, match="no '@@RESULT' line"):
        wrk_load.parse_wrk_output("Running 1s test\n")


def test_oip_body_round_trip() -> None:
    rows = np.arange(64, dtype=np.float32).reshape(2, 32)
    body = workload.oip_body(rows)
    assert body["inputs"][0]["shape"] == [2, 32]
    response = {"outputs": [{"name": "predict_proba", "shape": [2, 2], "data": [0.1, 0.9, 1, 0]}]}
    assert workload.proba_from_oip(response, n_rows=2).tolist() == [[0.1, 0.9], [1.0, 0.0]]


def test_tree_cpu_counts_children(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.3: pass\\n"
        "time.sleep(30)'])\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and tree_cpu_seconds(proc.pid) < 0.3:
            time.sleep(0.05)
        assert len(descendants(proc.pid)) == 2
        assert tree_cpu_seconds(proc.pid) >= 0.3
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def test_server_process_waits_for_ready_and_stops_its_group(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess(
        name="http.server",
        argv=[sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/",
        cwd=str(tmp_path),
        log_path=tmp_path / "server.log",
    )
    with server:
        pid = server.pid
        # ready means it answers; the process tree's CPU is read from /proc
        assert httpx.get(server.base_url + "/", timeout=5).status_code == 200
        assert server.cpu_seconds() > 0.0
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_server_process_reports_an_early_exit(tmp_path: Path) -> None:
    server = ServerProcess(
        name="broken",
        argv=[sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"],
        base_url=f"http://127.0.0.1:{free_port()}",
        ready_path="/",
        log_path=tmp_path / "broken.log",
    )
    with pytest.raises(RuntimeError, match=r"(?s)broken: exited with code 3 .*boom"):
        server.start(timeout_s=20)


def test_server_view_means_cover_only_the_point() -> None:
    from benchmarks.server_metrics import LATENCY, ServerView

    before = {"mlgate_batch_rows_sum": 10.0, "mlgate_batch_rows_count": 5.0}
    after = {
        "mlgate_batch_rows_sum": 110.0,
        "mlgate_batch_rows_count": 15.0,
        f"{LATENCY}:queue_sum": 0.02,
        f"{LATENCY}:queue_count": 10.0,
    }
    view = ServerView.between(before, after)
    assert view.rows_per_batch == 10.0
    assert view.queue_ms == pytest.approx(2.0)
    assert np.isnan(view.compute_ms)


def test_scrape_reads_histograms_of_a_live_endpoint(tmp_path: Path) -> None:
    from benchmarks.server_metrics import scrape

    (tmp_path / "metrics").write_text(
        "# TYPE mlgate_batch_rows histogram\n"
        'mlgate_batch_rows_bucket{model="rf",version="1",le="+Inf"} 4.0\n'
        'mlgate_batch_rows_count{model="rf",version="1"} 4.0\n'
        'mlgate_batch_rows_sum{model="rf",version="1"} 12.0\n'
        "# TYPE mlgate_request_latency_seconds histogram\n"
        'mlgate_request_latency_seconds_bucket{model="rf",stage="queue",le="+Inf"} 2.0\n'
        'mlgate_request_latency_seconds_count{model="rf",stage="queue"} 2.0\n'
        'mlgate_request_latency_seconds_sum{model="rf",stage="queue"} 0.5\n'
    )
    port = free_port()
    server = ServerProcess(
        name="http.server",
        argv=[sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/metrics",
        cwd=str(tmp_path),
    )
    with server:
        got = scrape(server.base_url + "/metrics")
        assert scrape(server.base_url + "/missing") == {}
    assert got == {
        "mlgate_batch_rows_count": 4.0,
        "mlgate_batch_rows_sum": 12.0,
        "mlgate_request_latency_seconds:queue_count": 2.0,
        "mlgate_request_latency_seconds:queue_sum": 0.5,
    }


def test_perf_analyzer_is_found_where_install_puts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import perf_analyzer

    monkeypatch.delenv("PERF_ANALYZER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert perf_analyzer.find(tmp_path) is None
    binary = tmp_path / "bin" / "perf_analyzer"
    binary.parent.mkdir()
    binary.write_text('#!/bin/sh\necho "$LD_LIBRARY_PATH"\n')
    binary.chmod(0o755)
    found = perf_analyzer.find(tmp_path)
    assert found is not None and found.binary == str(binary)
    out = subprocess.run([found.binary], env=found.env(), capture_output=True, text=True)
    assert out.stdout.split(os.pathsep)[0].strip() == str(tmp_path / "lib")
    monkeypatch.setenv("PERF_ANALYZER", str(binary))  # an explicit binary wins, as it is
    assert perf_analyzer.find(tmp_path / "elsewhere") == perf_analyzer.Found(str(binary))
