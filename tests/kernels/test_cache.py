"""numba's on-disk cache for kernels made with ``kernels.kernel`` (the monitor's, here): a
fresh process loads them instead of compiling, and a process with nowhere to write a cache
still works (compiling in memory)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json
import numpy as np
from monitor.detectors import adwin
from monitor.stats import binning
from monitor.stats.binning import BinCounts, NumericBinner

rng = np.random.default_rng(0)
binner = NumericBinner(np.quantile(rng.normal(size=1000), np.linspace(0, 1, 21)))
acc = BinCounts(binner.n_bins)
binner.count(np.r_[rng.normal(size=5000), np.nan, np.inf], acc)
found = adwin.ADWIN().update_many(np.r_[rng.normal(0, 0.1, 1000), rng.normal(1, 0.1, 1000)])
kernels = [binning._count_kernel, adwin._run]
print(json.dumps({
    "counts": acc.counts.tolist(), "nulls": acc.nulls, "found": found.tolist(),
    "hits": sum(sum(k.stats.cache_hits.values()) for k in kernels),
    "misses": sum(sum(k.stats.cache_misses.values()) for k in kernels),
    "cache": type(binning._count_kernel._cache).__name__,
}))
"""


def _run(cwd: Path, env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=cwd,
        env={**os.environ, **env, "PYTHONPATH": str(cwd)}, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.slow
def test_a_second_process_loads_the_kernels_from_the_cache(tmp_path: Path) -> None:
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba")}  # an empty cache to start from
    first = _run(ROOT, env)
    second = _run(ROOT, env)
    assert first["cache"] == second["cache"] == "FunctionCache"
    assert first["misses"] == 2 and first["hits"] == 0  # compiled, then saved
    assert second["misses"] == 0 and second["hits"] == 2  # loaded, not compiled
    assert {k: v for k, v in first.items() if k not in ("hits", "misses")} == {
        k: v for k, v in second.items() if k not in ("hits", "misses")
    }
    assert any((tmp_path / "numba").rglob("*.nbi"))


@pytest.mark.slow
def test_without_a_writable_cache_place_the_kernels_are_compiled_in_memory(
    tmp_path: Path,
) -> None:
    for part in ("monitor", "registry", "kernels"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    for stage in ("detectors", "stats"):  # where the kernels live: cannot be made a directory
        (tmp_path / "monitor" / stage / "__pycache__").write_text("")
    nowhere = "/dev/null/numba"  # neither the user's cache nor NUMBA_CACHE_DIR can be made
    got = _run(tmp_path, {"HOME": "/dev/null", "XDG_CACHE_HOME": nowhere,
                          "NUMBA_CACHE_DIR": nowhere})  # fmt: skip
    assert got["cache"] == "NullCache" and got["hits"] == 0
    reference = _run(ROOT, {"NUMBA_CACHE_DIR": str(tmp_path / "numba")})
    assert {k: got[k] for k in ("counts", "nulls", "found")} == {
        k: reference[k] for k in ("counts", "nulls", "found")
    }


def test_kernels_imports_nothing_but_numba_and_numpy() -> None:
    """``kernels`` is a leaf every part may use: it must not import any of them."""
    import ast

    imported: set[str] = set()
    for path in (ROOT / "kernels").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    outside = imported - {"__future__", "collections", "dataclasses", "types", "typing"}
    assert "numba" in outside and outside <= {"numba", "numpy"}
