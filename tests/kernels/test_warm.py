"""``mlgate kernels warm`` (make's install step) fills numba's on-disk cache with every kernel
family, so that a fresh process serving other models of those families compiles nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Models unlike the warm-up's samples (other estimators, sizes, widths, pipelines), served by
# the numba runtime, plus the monitor's kernels; prints numba's cache hits and misses.
SCRIPT = """
import json, sys, warnings
import numpy as np
from sklearn.ensemble import (ExtraTreesRegressor, GradientBoostingRegressor,
                              HistGradientBoostingRegressor, RandomForestClassifier)
from sklearn.linear_model import Ridge, SGDClassifier
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder
from sklearn.impute import SimpleImputer
from gateway.runtimes import compile_model
from kernels import cache_stats
from mlgate.cli.kernels import KERNEL_MODULES
from monitor.detectors.adwin import ADWIN
from monitor.stats.binning import BinCounts, NumericBinner

warnings.simplefilter("ignore")
rng = np.random.default_rng(1)
X = rng.normal(size=(200, 7)).astype(np.float32)
X[::17, 2] = np.nan
y = (np.nan_to_num(X[:, 0]) > 0).astype(int)
r = X[:, 1] * 3.0
codes = rng.integers(0, 5, size=(200, 3)).astype(np.float32)
models = [
    (RandomForestClassifier(7, max_depth=5).fit(X, y), X),
    (ExtraTreesRegressor(3).fit(X, r), X),
    (GradientBoostingRegressor(n_estimators=9).fit(np.nan_to_num(X), r), np.nan_to_num(X)),
    (HistGradientBoostingRegressor(max_iter=4).fit(X, r), X),
    (make_pipeline(SimpleImputer(), MinMaxScaler(), SGDClassifier()).fit(X, y), X),
    (Ridge().fit(np.nan_to_num(X), r), np.nan_to_num(X)),
    (make_pipeline(OrdinalEncoder(), RandomForestClassifier(3)).fit(codes, y), codes),
    (make_pipeline(OneHotEncoder(handle_unknown="ignore"), Ridge()).fit(codes, r), codes),
    (MLPRegressor(hidden_layer_sizes=(5, 3), max_iter=3).fit(np.nan_to_num(X).astype(float), r),
     np.nan_to_num(X)),
]
for model, rows in models:
    runtime = compile_model(model, "numba")
    runtime.predict(rows[:1]); runtime.predict(rows)
binner = NumericBinner(np.array([0.0, 1.0]))
binner.count(rng.normal(size=100), BinCounts(binner.n_bins))
ADWIN().update_many(rng.normal(size=100))
stats = cache_stats(sys.modules[m] for m in KERNEL_MODULES)
print(json.dumps({s.kernel: [s.hits, s.misses] for s in stats}))
"""


def _run(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-P", *args], capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_warm_fills_the_cache_and_a_fresh_process_compiles_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "numba"
    env = {"NUMBA_CACHE_DIR": str(cache)}  # an empty cache to start from
    report = json.loads(_run("-m", "mlgate", "kernels", "warm", "--no-parallel",
                             "--format", "json", env=env))  # fmt: skip
    assert report["compiled"] > 0 and report["uncached"] == []
    assert report["cache_paths"] and all(p.startswith(str(cache)) for p in report["cache_paths"])
    assert len(list(cache.rglob("*.nbi"))) >= 8 and any(cache.rglob("*.nbc"))
    stats = json.loads(_run("-c", SCRIPT, env=env).splitlines()[-1])
    compiled = {kernel: misses for kernel, (_hits, misses) in stats.items() if misses}
    assert compiled == {}, f"compiled although warmed: {compiled}"
    assert sum(hits for hits, _ in stats.values()) >= 5  # forest, linear, mlp, onehot, monitor
    again = json.loads(_run("-m", "mlgate", "kernels", "warm", "--no-parallel",
                            "--format", "json", env=env))  # fmt: skip
    assert again["compiled"] == 0 and again["loaded"] > 0
