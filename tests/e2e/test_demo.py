"""`mlgate demo` end to end, as `make demo` runs it: `mlgate serve` (gateway, monitor and
trainer processes), a client streaming traffic and delayed labels over HTTP, a real webhook
receiver, the concept change, the retrain, the analysed rollout and the recovery."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlgate.demo.data import AFTER, agrawal
from registry import Registry


@pytest.mark.slow
def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlgate", "demo", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:] + out[-3000:]
    home = tmp_path / "demo"
    reg = Registry(str(home / "registry"))
    assert [mv.version for mv in reg.versions("loans")] == [1, 2]
    assert reg.route("loans").champion == 2
    lineage = reg.get("loans", 2).lineage
    assert lineage.parent_version == 1 and (lineage.trigger or "").startswith("alert:")
    # the loop, in order, from the registry's audit trail
    kinds = [e.kind for e in reg.events("loans")]
    alert = min(i for i, k in enumerate(kinds) if k.startswith("model."))
    at = alert + 1
    for kind in ("trainer.run.started", "register", "rollout.started", "trainer.run.finished",
                 "rollout.canary", "rollout.promoted"):  # fmt: skip
        assert kind in kinds[at:], (kind, kinds)  # each one after the one before it
        at = kinds.index(kind, at) + 1
    assert re.search(r"requests: \d+ answered, 0 failed", out), out[-2000:]
    assert "signature valid" in out and "INVALID" not in out
    # accuracy falls with the change and recovers to near a model trained offline on the
    # new rule
    before = float(re.search(r"accuracy before the change ([\d.]+)%", out).group(1)) / 100  # type: ignore[union-attr]
    fallen = float(re.search(r"after it on v1 ([\d.]+)%", out).group(1)) / 100  # type: ignore[union-attr]
    end = float(re.search(r"at the end ([\d.]+)%", out).group(1)) / 100  # type: ignore[union-attr]
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = agrawal(AFTER, 2000, seed=50)
    X_test, y_test = agrawal(AFTER, 1000, seed=51)
    offline = HistGradientBoostingClassifier(random_state=0).fit(X, y)
    offline_accuracy = float(np.mean(offline.predict(X_test) == y_test))
    assert before > 0.95 and fallen < 0.7
    assert end >= offline_accuracy - 0.05, (end, offline_accuracy)
    assert (home / "drift-report.html").read_text().lstrip().lower().startswith("<!doctype")
