"""What a gateway worker imports at start: the dashboard mounted beside the gateway must not
pull in the monitor's stages (numba, DuckDB), the trainer or scikit-learn; they cost ~1 s of
each worker's start (issue: a cold start in seconds) and are imported when first used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import monitor

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from litestar import Litestar
from mlgate.settings import resolve
from mlgate.ui import mount_dashboard
app = Litestar(route_handlers=[])
assert mount_dashboard(app, resolve(home=sys.argv[1])) == "/ui"
heavy = ("numba", "duckdb", "trainer", "sklearn", "skops", "monitor.store", "monitor.ingest")
print(sorted(m for m in heavy if m in sys.modules))
"""


def test_mounting_the_dashboard_imports_no_monitor_stage_nor_trainer(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-P", "-c", PROBE, str(tmp_path / "home")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_monitor_package_still_exports_its_public_names() -> None:
    assert sorted(monitor.__all__) == sorted(monitor._EXPORTS)
    for name in monitor.__all__:
        assert getattr(monitor, name).__name__ == name
    assert set(monitor.__all__) <= set(dir(monitor))
