"""The predictions' profile comes from the outputs the registry stored at registration; only
versions without them make the monitor load the model and score the reference itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor import Monitor, MonitorConfig
from monitor.stats.profile import ReferenceProfile
from registry import ModelVersion, Registry
from tests.monitor.conftest import T0_US, Logs, fit_classifier, fit_regressor

ROOT = Path(__file__).resolve().parents[2]


class CountingRegistry(Registry):
    """A real registry that counts model loads."""

    loads = 0

    def load_model(self, mv: ModelVersion, *, trust_pickle: bool = False) -> object:
        CountingRegistry.loads += 1
        return super().load_model(mv, trust_pickle=trust_pickle)


def _forget_stored_predictions(reg: Registry, name: str, version: int) -> None:
    """Rewrite the manifest as one written before reference predictions existed."""
    key = f"models/{name}/versions/{version}/manifest.json"
    raw = json.loads(reg.store.read(key))
    del raw["reference_predictions"], raw["reference_predictions_sha256"]
    reg.store.write(key, json.dumps(raw).encode())


def _prediction_profile(m: Monitor, name: str) -> ReferenceProfile:
    row = m.store.con.execute(
        "SELECT prediction_profile_id FROM versions WHERE model = ?", [name]
    ).fetchone()
    assert row is not None and row[0] is not None
    profile = m.store.load_profile(row[0])
    assert profile is not None
    return profile


def _pass(reg: Registry, logs: Logs, db: Path) -> Monitor:
    m = Monitor(reg, str(logs.root), db=db, config=MonitorConfig(window_rows=1000))
    assert m.run_once().windows == 2
    return m


@pytest.mark.parametrize("fit", [fit_classifier, fit_regressor])
def test_stored_and_fallback_profiles_agree_and_only_the_fallback_loads_the_model(
    fit: Any, local_registry_url: str, tmp_path: Path
) -> None:
    est, ref = fit()
    x = np.random.default_rng(4).normal(size=(2000, ref.width)) + 0.2
    profiles = []
    for stored in (True, False):
        reg = CountingRegistry(f"{local_registry_url}/{stored}")
        mv = reg.register("m", est, reference=ref)
        if not stored:
            _forget_stored_predictions(reg, "m", mv.version)
        logs = Logs(tmp_path / f"logs-{stored}")
        logs.predictions(mv, x, estimator=est, start_us=T0_US)
        CountingRegistry.loads = 0
        m = _pass(reg, logs, tmp_path / f"m-{stored}.duckdb")
        assert CountingRegistry.loads == (0 if stored else 1)
        roles = m.store.con.execute("SELECT DISTINCT role FROM results ORDER BY role").fetchall()
        want = [("feature",), ("prediction",)] + ([("score",)] if fit is fit_classifier else [])
        assert sorted(roles) == sorted(want)  # prediction drift either way
        profiles.append(_prediction_profile(m, "m"))
        m.close()
    a, b = profiles
    assert [c.name for c in a.columns] == [c.name for c in b.columns] and a.rows == b.rows
    for ca, cb in zip(a.columns, b.columns, strict=True):
        np.testing.assert_array_equal(ca.counts, cb.counts)
        np.testing.assert_allclose(ca.boundaries, cb.boundaries, rtol=1e-6)  # float32 vs 64
        assert ca.categories == cb.categories


def test_corrupted_stored_predictions_are_reported_not_used(
    local_registry_url: str, tmp_path: Path
) -> None:
    est, ref = fit_classifier()
    reg = CountingRegistry(local_registry_url)
    mv = reg.register("m", est, reference=ref)
    key = "models/m/versions/1/reference_predictions.parquet"
    reg.store.write(key, reg.store.read(key)[:-4] + b"XXXX")
    logs = Logs(tmp_path / "logs")
    logs.predictions(mv, np.random.default_rng(1).normal(size=(2000, 4)), estimator=est)
    CountingRegistry.loads = 0
    m = _pass(reg, logs, tmp_path / "m.duckdb")
    assert CountingRegistry.loads == 0  # a tampered file is not a reason to unpickle
    (detail,) = m.store.con.execute(
        "SELECT detail FROM problems WHERE kind = 'no_prediction_reference'"
    ).fetchone() or ("",)
    assert "ArtifactCorrupt" in detail and "reference_predictions.parquet" in detail
    roles = m.store.con.execute("SELECT DISTINCT role FROM results").fetchall()
    assert roles == [("feature",)]  # feature drift is still computed
    m.close()


PASS_SCRIPT = """
import json, sys
from monitor import Monitor, MonitorConfig
from registry import Registry
m = Monitor(Registry(sys.argv[1]), sys.argv[2], db=sys.argv[3],
            config=MonitorConfig(window_rows=1000))
result = m.run_once()
m.close()
# numba imports the scipy package itself (a version check): its submodules must not come
heavy = {n.split(".")[0] for n in sys.modules} & {"sklearn", "skops", "river", "httpx", "polars"}
heavy |= {n for n in sys.modules if n.startswith(("scipy.special", "scipy.stats"))}
heavy = sorted(heavy)
import pyarrow as pa
pool = pa.default_memory_pool().backend_name
print(json.dumps({"windows": result.windows, "heavy": heavy, "arrow_pool": pool}))
"""


@pytest.mark.slow
def test_a_pass_imports_no_model_library_nor_polars_nor_scipy_statistics(
    local_registry_url: str, tmp_path: Path
) -> None:
    est, ref = fit_classifier()
    reg = Registry(local_registry_url)
    mv = reg.register("m", est, reference=ref)
    logs = Logs(tmp_path / "logs")
    logs.predictions(mv, np.random.default_rng(2).normal(size=(2000, 4)), estimator=est)
    done = subprocess.run(
        [sys.executable, "-c", PASS_SCRIPT, local_registry_url, str(logs.root),
         str(tmp_path / "m.duckdb")],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # polars (~30 MiB resident) stays out too; Arrow allocates from jemalloc, which hands
    # decoded batches back to the system (monitor/__init__.py)
    out = json.loads(done.stdout.splitlines()[-1])
    assert (out["windows"], out["heavy"]) == (2, [])
    if sys.platform.startswith("linux"):
        assert out["arrow_pool"] == "jemalloc"
