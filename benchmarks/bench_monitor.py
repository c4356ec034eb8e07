"""Drift monitor benchmark: ours vs scipy (per feature) vs Evidently's DataDriftPreset.

Same data for all three: a 100,000-row reference and prediction logs of 1M and 10M rows x 32
features (3 features shifted by 0.5 sigma), written as the gateway writes them (1M-row
segments). Each contender runs in its own process so its peak RSS is its own:

- **ours**: ``monitor.Monitor`` on a fresh DuckDB file, 100,000-row windows (every window
  gets PSI, KS, Wasserstein, JS, predictions, decisions); then one more 100k-row segment
  arrives and one ``run_once`` computes its window. The model's predictions on the reference
  come from the registry (stored at registration), as for any version registered since.
  numba's on-disk cache is warmed first by a separate process (as after the first
  ``mlgate monitor run`` on a machine); **ours, cold numba cache** (at the smallest size
  only) runs with an empty ``NUMBA_CACHE_DIR``, so it compiles every kernel in the pass.
- **scipy**: ``ks_2samp`` + ``wasserstein_distance`` per feature on 1M-row windows, reading
  the same Parquet segments; then one 100k-row window.
- **Evidently** (own venv ``benchmarks/.venv-evidently``, ``pandas<3``): one
  ``DataDriftPreset`` report of the whole log against the reference; then a 100k window.
  Skipped above ``--evidently-max-rows`` (10M took 1,028 s and 9.3 GiB on this machine).

    .venv/bin/python -m benchmarks.bench_monitor [--sizes 1000000,10000000] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "monitor"
EVIDENTLY_PY = ROOT / "benchmarks" / ".venv-evidently" / "bin" / "python"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
FEATURES = 32
SHIFTED = (4, 17, 29)
REF_ROWS = 100_000
SEGMENT_ROWS = 1_000_000
NEW_WINDOW_ROWS = 100_000
MODEL = "bench"
T0_US = 1_764_000_000_000_000


def _names() -> list[str]:
    return [f"f{j:02d}" for j in range(FEATURES)]


# -- data ------------------------------------------------------------------------------------
def prepare(max_rows: int) -> dict[str, Any]:
    """Reference, registered model and segments (cached under benchmarks/.work/monitor)."""
    import numpy as np
    import polars as pl
    from sklearn.linear_model import LogisticRegression

    from registry import Registry, logschema

    WORK.mkdir(parents=True, exist_ok=True)
    meta_path = WORK / "meta.json"
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    reg_dir = WORK / "registry"

    def register() -> int:
        """The model and reference, deterministic (seed 0): rebuilt the same when the cached
        registry predates the stored reference predictions."""
        shutil.rmtree(reg_dir, ignore_errors=True)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(REF_ROWS, FEATURES))
        y = (x[:, 0] + x[:, 4] - x[:, 17] + rng.normal(size=REF_ROWS) > 0).astype(int)
        est = LogisticRegression().fit(x.astype(np.float32), y)
        ref = pl.DataFrame({n: x[:, j] for j, n in enumerate(_names())})
        ref.write_parquet(WORK / "reference.parquet")
        return Registry(str(reg_dir)).register(MODEL, est, reference=ref).version

    if not meta:
        meta = {"version": register(), "segments": [], "new_window": None}
    reg = Registry(str(reg_dir))
    mv = reg.get(MODEL, meta["version"])
    if mv.reference_predictions is None:
        assert register() == meta["version"]
        mv = reg.get(MODEL, meta["version"])
    est = reg.load_model(mv)
    seg_dir = WORK / "segments"
    seg_dir.mkdir(exist_ok=True)

    def write(path: Path, n: int, start_us: int, seed: int) -> None:
        r = np.random.default_rng(seed)
        x = r.normal(size=(n, FEATURES))
        x[:, list(SHIFTED)] += 0.5
        proba = est.predict_proba(x.astype(np.float32))  # type: ignore[attr-defined]
        cols: dict[str, Any] = {
            "ts": pl.Series(start_us + np.arange(n, dtype=np.int64)).cast(pl.Datetime("us", "UTC")),
            "request_id": [f"{seed}-{i}" for i in range(n)],
            "model": [MODEL] * n,
            "version": pl.Series([mv.version] * n, dtype=pl.Int64),
            "route": ["champion"] * n,
        }
        for j, name in enumerate(_names()):
            cols[logschema.feature_column(name)] = x[:, j]
        cols["prediction"] = [str(c) for c in proba.argmax(axis=1)]
        cols[logschema.proba_column(0)] = proba[:, 0]
        cols[logschema.proba_column(1)] = proba[:, 1]
        cols["latency_us"] = pl.Series(np.full(n, 150), dtype=pl.Int64)
        cols["batch_rows"] = pl.Series(np.full(n, 16), dtype=pl.Int64)
        cols["status"] = pl.Series(np.full(n, 200), dtype=pl.Int64)
        tmp = path.with_suffix(".tmp")
        # compressed as the gateway's log writer does
        pl.DataFrame(cols).write_parquet(
            tmp, row_group_size=131_072, compression=logschema.SEGMENT_COMPRESSION
        )
        os.replace(tmp, path)

    if meta.get("compression") != logschema.SEGMENT_COMPRESSION:  # written by an older writer
        meta.update(segments=[], new_window=None, compression=logschema.SEGMENT_COMPRESSION)
    while len(meta["segments"]) * SEGMENT_ROWS < max_rows:
        k = len(meta["segments"])
        path = seg_dir / f"w1-{k:06d}.parquet"
        write(path, SEGMENT_ROWS, T0_US + k * SEGMENT_ROWS, seed=100 + k)
        meta["segments"].append(str(path))
        meta_path.write_text(json.dumps(meta))
    if meta["new_window"] is None:
        path = seg_dir / "w2-new-window.parquet"
        write(path, NEW_WINDOW_ROWS, T0_US + 10**13, seed=99)
        meta["new_window"] = str(path)
        meta_path.write_text(json.dumps(meta))
    return meta


def _peak_rss_mib() -> float:
    """This process's own peak resident size.

    Not ``ru_maxrss``: Linux carries it across ``execve``, and ``subprocess`` starts a worker
    by ``vfork`` + ``exec`` from this script's process, so a worker's ``ru_maxrss`` is at
    least what the parent held when it spawned it: 1,260 MiB for every contender after
    ``prepare`` had generated the 10M-row log in the parent (a fresh clone), whatever the
    worker itself used. ``VmHWM`` is the high-water mark of the worker's own address space.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU seconds of this process, all threads (robust to a busy shared machine)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- contenders (each in its own process) -----------------------------------------------------
def _numba_cache() -> str:
    """How this process got the monitor's kernels: loaded from the cache or compiled."""
    from monitor.detectors import adwin
    from monitor.stats import binning

    hits = misses = 0
    for module in (adwin, binning):
        for obj in vars(module).values():
            stats = getattr(obj, "stats", None)
            if stats is not None and hasattr(stats, "cache_hits"):
                hits += sum(stats.cache_hits.values())
                misses += sum(stats.cache_misses.values())
    if misses:
        return f"cold ({misses} compiled, {hits} loaded)"
    return f"warm ({hits} loaded)"


def warm_numba(rows: int, meta: dict[str, Any]) -> dict[str, Any]:
    """Compile (or load) the monitor's kernels once, filling numba's on-disk cache."""
    import numpy as np

    from monitor.detectors.adwin import ADWIN
    from monitor.stats.binning import BinCounts, NumericBinner

    binner = NumericBinner(np.linspace(-3.0, 3.0, 101))
    binner.count(np.random.default_rng(0).normal(size=1000), BinCounts(binner.n_bins))
    ADWIN().update_many(np.random.default_rng(1).normal(size=1000))
    return {"numba_cache": _numba_cache()}


def run_ours(rows: int, meta: dict[str, Any]) -> dict[str, Any]:
    from monitor import Monitor, MonitorConfig
    from registry import Registry, logschema

    segments = meta["segments"][: rows // SEGMENT_ROWS]
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        logs = Path(tmp) / "logs"
        day = Path(logschema.segment_dir(str(logs), logschema.PREDICTIONS, MODEL, "2025-11-24"))
        day.mkdir(parents=True)
        for s in segments:
            os.link(s, day / Path(s).name)
        config = MonitorConfig(window_rows=NEW_WINDOW_ROWS)
        m = Monitor(Registry(str(WORK / "registry")), str(logs), db=Path(tmp) / "m.duckdb",
                    config=config)  # fmt: skip
        started, cpu = time.perf_counter(), _cpu_s()
        full = m.run_once()
        full_s, full_cpu = time.perf_counter() - started, _cpu_s() - cpu
        os.link(meta["new_window"], day / Path(meta["new_window"]).name)
        started = time.perf_counter()
        new = m.run_once()
        new_s = time.perf_counter() - started
        drifted = m.store.con.execute(
            "SELECT drifted_features FROM summaries ORDER BY window_id DESC LIMIT 1"
        ).fetchone()
        m.close()
    assert full.rows == rows and new.windows == 1, (full, new)
    heavy = sorted({n.split(".")[0] for n in sys.modules} & {"sklearn", "skops", "river"})
    return {"full_s": full_s, "full_cpu_s": full_cpu, "new_window_s": new_s,
            "peak_rss_mib": _peak_rss_mib(), "numba_cache": _numba_cache(),
            "model_libraries_imported": heavy,
            "windows": full.windows, "drifted": sorted(drifted[0]) if drifted else []}  # fmt: skip


def _read_features(path: str, *, pandas: bool = True) -> Any:
    import pyarrow.parquet as pq

    # "in_" is registry.logschema.FEATURE_PREFIX, spelled out: the Evidently venv has no mlgate
    table = pq.read_table(path, columns=["in_" + n for n in _names()])
    return table.to_pandas() if pandas else table


def run_scipy(rows: int, meta: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import pyarrow.parquet as pq
    from scipy import stats

    ref = pq.read_table(WORK / "reference.parquet")

    def window(table: Any) -> list[str]:
        out = []
        for name in _names():
            r = ref.column(name).to_numpy()
            c = table.column("in_" + name).to_numpy()
            ks = stats.ks_2samp(r, c)
            w = stats.wasserstein_distance(r, c) / np.std(r)
            if w >= 0.1:
                out.append(name)
            del ks
        return out

    started, cpu = time.perf_counter(), _cpu_s()
    drifted: list[str] = []
    for s in meta["segments"][: rows // SEGMENT_ROWS]:
        drifted = window(_read_features(s, pandas=False))
    full_s, full_cpu = time.perf_counter() - started, _cpu_s() - cpu
    started = time.perf_counter()
    window(_read_features(meta["new_window"], pandas=False))
    new_s = time.perf_counter() - started
    return {"full_s": full_s, "full_cpu_s": full_cpu, "new_window_s": new_s,
            "peak_rss_mib": _peak_rss_mib(),
            "windows": rows // SEGMENT_ROWS, "drifted": drifted}  # fmt: skip


def run_evidently(rows: int, meta: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref = pd.read_parquet(WORK / "reference.parquet")

    def report(cur: Any) -> list[str]:
        cur = cur.rename(columns=lambda c: c[3:])
        snap = Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur)
        out = []
        for metric in snap.dict()["metrics"]:
            cfg = metric["config"]
            if not cfg.get("type", "").endswith("ValueDrift"):
                continue
            # p-value methods drift below the threshold, distances (Wasserstein, used past
            # 1,000 rows) at or above it
            value, limit = metric["value"], cfg["threshold"]
            pvalue = "p_value" in str(cfg.get("method", ""))
            if (value < limit) if pvalue else (value >= limit):
                out.append(cfg["column"])
        return sorted(out)

    started, cpu = time.perf_counter(), _cpu_s()
    frames = [_read_features(s) for s in meta["segments"][: rows // SEGMENT_ROWS]]
    drifted = report(pd.concat(frames, ignore_index=True))
    del frames
    full_s, full_cpu = time.perf_counter() - started, _cpu_s() - cpu
    started = time.perf_counter()
    report(_read_features(meta["new_window"]))
    new_s = time.perf_counter() - started
    return {"full_s": full_s, "full_cpu_s": full_cpu, "new_window_s": new_s,
            "peak_rss_mib": _peak_rss_mib(),
            "windows": 1, "drifted": drifted}  # fmt: skip


WORKERS = {
    "ours": run_ours,
    "ours-cold": run_ours,
    "scipy": run_scipy,
    "evidently": run_evidently,
    "warm": warm_numba,
}
LABELS = {"ours-cold": "ours, cold numba cache"}


def _spawn(worker: str, rows: int, timeout_s: float) -> dict[str, Any]:
    python = str(EVIDENTLY_PY) if worker == "evidently" else sys.executable
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [python, str(Path(__file__).resolve()), "--worker", worker, "--rows", str(rows)]
    with tempfile.TemporaryDirectory(dir=WORK) as empty:
        if worker == "ours-cold":
            env["NUMBA_CACHE_DIR"] = empty  # numba looks here first: nothing to load
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                  env=env, cwd=ROOT, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout_s:.0f}s"}
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1][:200]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _table(results: dict[int, dict[str, dict[str, Any]]]) -> str:
    lines = [
        "| log rows | contender | full drift pass | its CPU time | peak RSS | new 100k window"
        " | drifted found | numba cache |",
        "|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for rows, by in results.items():
        for worker, r in by.items():
            name = LABELS.get(worker, worker)
            if "error" in r or "skipped" in r:
                why = r.get("error") or r.get("skipped")
                lines.append(f"| {rows:,} | {name} | – | – | – | – | {why} | |")
                continue
            lines.append(
                f"| {rows:,} | {name} | {r['full_s']:.2f} s | {r.get('full_cpu_s', 0):.1f} s |"
                f" {r['peak_rss_mib']:.0f} MiB |"
                f" {r['new_window_s']:.3f} s | {', '.join(r['drifted'])} |"
                f" {r.get('numba_cache', '')} |"
            )
    return "\n".join(lines)


def _ratios(results: dict[int, dict[str, dict[str, Any]]]) -> list[str]:
    out = []
    for rows, by in results.items():
        for mine in ("ours", "ours-cold"):
            ours = by.get(mine, {})
            for peer in ("scipy", "evidently"):
                other = by.get(peer, {})
                if "full_s" not in ours or "full_s" not in other:
                    continue
                cpu = ""
                if ours.get("full_cpu_s") and other.get("full_cpu_s"):
                    cpu = f" ({other['full_cpu_s'] / ours['full_cpu_s']:.0f}x less CPU time)"
                out.append(
                    f"- {rows:,} rows: {LABELS.get(mine, mine)} is"
                    f" {other['full_s'] / ours['full_s']:.0f}x faster than {peer} on the full"
                    f" pass{cpu}"
                )
    return out


def write_results(text: str) -> None:
    """Replace (or add) the ``## Monitor`` section of RESULTS.md, leaving the others alone."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start = old.find("\n## Monitor")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    else:
        end = old.find("\n## ", start + 1)
        new = old[:start] + "\n" + text + ("\n" + old[end:] if end >= 0 else "\n")
    RESULTS.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--evidently-max-rows", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--contenders", default="ours,scipy,evidently")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep earlier results (benchmarks/.work/monitor/results.json)"
        " for contenders not run now",
    )
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--rows", type=int)
    args = parser.parse_args()
    if args.worker:
        meta = json.loads((WORK / "meta.json").read_text())
        print(json.dumps(WORKERS[args.worker](args.rows, meta)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    started = time.perf_counter()
    prepare(max(sizes))
    print(f"data ready in {time.perf_counter() - started:.0f}s", flush=True)
    saved = WORK / "results.json"
    results: dict[int, dict[str, dict[str, Any]]] = {}
    if args.merge and saved.exists():
        results = {int(k): v for k, v in json.loads(saved.read_text()).items()}
    chosen = args.contenders.split(",")
    if "ours" in chosen:
        print("numba cache warm-up:", json.dumps(_spawn("warm", 0, args.timeout)), flush=True)
    # each contender over every size before the next one, Evidently (2.5 GiB at 1M) last,
    # so that no pass runs in the wake of its memory use
    for worker in ("ours", "ours-cold", "scipy", "evidently"):
        for rows in sizes:
            by: dict[str, dict[str, Any]] = results.setdefault(rows, {})
            if worker == "ours-cold" and ("ours" not in chosen or rows != min(sizes)):
                continue
            if worker not in chosen and worker != "ours-cold":
                continue
            if worker == "evidently" and not EVIDENTLY_PY.exists():
                by[worker] = {"skipped": "benchmarks/.venv-evidently missing"}
            elif worker == "evidently" and rows > args.evidently_max_rows:
                by[worker] = {"skipped": f"skipped above {args.evidently_max_rows:,} rows"
                              " (1,028 s and 9.3 GiB at 10M before)"}  # fmt: skip
            else:
                by[worker] = _spawn(worker, rows, args.timeout)
            print(rows, worker, json.dumps(by[worker]), flush=True)
    saved.write_text(json.dumps(results))
    results = dict(sorted(results.items()))
    table = _table(results)
    print(table)
    print("\n".join(_ratios(results)))
    if args.write:
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        shifted = ", ".join(f"f{j:02d}" for j in SHIFTED)
        intro = (
            f"Drift pass over prediction logs, measured {when} on this 2-core machine with"
            " `.venv/bin/python -m benchmarks.bench_monitor --write` (shared with other"
            " jobs: absolute times vary up to 2x, compare within the table). Reference"
            f" 100,000 rows; {FEATURES} features, 3 shifted by 0.5 sigma ({shifted});"
            " ours: 100k-row windows with all statistics, predictions and decisions;"
            " scipy: `ks_2samp` + `wasserstein_distance` per feature per 1M-row window;"
            " Evidently 0.7 `DataDriftPreset` on the whole log. The log is 1M-row segments"
            " (131,072-row row groups) compressed as the gateway writes them (LZ4); every"
            " contender reads the same files. Ours runs with its defaults: it also keeps"
            " the prediction rows for the feedback join, and DuckDB is limited to 64MB."
            " Ours scores nothing: the"
            " model's predictions on the reference were stored by the registry at"
            " registration (the pass imports neither scikit-learn nor skops). numba's"
            " on-disk cache was warmed by a separate process before the timed runs; each"
            " contender runs over every size before the next, Evidently last; the"
            " 'cold numba cache' row starts from an empty cache (compiles every kernel)."
        )
        write_results(
            "## Monitor\n\n" + intro + "\n\n" + table + "\n\n" + "\n".join(_ratios(results)) + "\n"
        )


if __name__ == "__main__":
    main()
