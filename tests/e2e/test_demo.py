"""`mlgate demo` end to end, as `make demo` runs it: a real server, CLI processes, a real
webhook receiver, the monitor and the HTML report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from registry import Registry


@pytest.mark.slow
def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlgate", "demo", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "COLUMNS": "200"},
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:] + out[-3000:]
    home = tmp_path / "demo"
    reg = Registry(str(home / "registry"))
    assert [mv.version for mv in reg.versions("breast-cancer")] == [1, 2, 3]
    route = reg.route("breast-cancer")
    assert route.champion == 2 and route.previous_champion == 1 and not route.shadows
    # keyed traffic at 20%: the canary's share of 400 distinct keys is near 80
    canary = int(re.search(r"'version 2 \(canary\)': (\d+)", out).group(1))  # type: ignore[union-attr]
    assert 50 <= canary <= 110
    # the first 4 windows (2,000 rows) are clean: no alert may name them; the drift is found
    # at the second drifted window (k = 2), on the 20 scaled features and no others
    alerts = re.findall(r"model\.drift\.detected for breast-cancer v2 window (\d+)", out)
    assert alerts and min(int(w) for w in alerts) >= 5, alerts
    assert "dataset drift True" in out and "20 features drifted" in out
    assert "signature valid" in out
    assert "INVALID" not in out
    report = (home / "drift-report.html").read_text()
    assert report.startswith("<!DOCTYPE html>") or report.lstrip().lower().startswith("<!doctype")
    assert "worst_area" in report and "<svg" in report
