"""README.md's tour, run as written: every ``bash`` block of the section, in order, in a fresh
directory, as one script. Only the ports change (to free ones), so the test can run beside
other servers; if the tour breaks for a user, it breaks here first."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


def tour_script() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A short tour", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert blocks, "README.md's tour has no bash blocks"
    return "\n".join(blocks)


def test_the_tour_has_the_steps_a_user_needs() -> None:
    script = tour_script()
    for step in ("models register", "webhooks listen", "serve", "/infer", "/feedback",
                 "drift.detected", "monitor report", "rollout start", "loadtest"):  # fmt: skip
        assert step in script, step


@pytest.mark.slow
def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    http, grpc, hook = free_port(), free_port(), free_port()
    script = tour_script().replace("serve --port 8080", f"serve --port 8080 --grpc-port {grpc}")
    script = script.replace("8080", str(http)).replace("9000", str(hook))
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    (tmp_path / "tour.sh").write_text(
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + script
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLGATE_")}
    env["PYTHONPATH"] = str(ROOT)  # the tree under test, whatever the venv points at
    done = subprocess.run(["timeout", "600", "bash", "tour.sh"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    alerts = (tmp_path / "alerts.log").read_text()
    assert re.search(r"verified model\.drift\.detected model=cancer v1", alerts), alerts
    assert "BAD SIGNATURE" not in alerts
    report = (tmp_path / "report.html").read_text()
    assert "<svg" in report and "mean_radius" in report
    assert "throughput" in out  # the load test's summary
