"""Turning complete windows into result rows and window summaries.

Statistics come from one SQL query for all pending windows; thresholds are applied as
numpy vectors; the consecutive-window streak of each column carries from one window to the
next in (model, version, route, seq) order, across passes through the stored results.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from monitor.compute.decide import DECIDING, dataset_decision
from monitor.compute.performance import window_performance
from monitor.compute.statistics import window_statistics

if TYPE_CHECKING:
    from collections.abc import Callable

    from monitor.config import MonitorConfig
    from monitor.store import MonitorStore
    from monitor.store.rows import WindowRow

REPORTED = (
    "psi",
    "js",
    "ks",
    "ks_pvalue",
    "wasserstein",
    "chi2",
    "chi2_pvalue",
    "null_rate",
    "unseen_share",
    "mean",
)


@dataclass
class WindowSummary:
    """What a computed window tells the alerting and the metrics."""

    window_id: int
    model: str
    version: int
    route: str
    seq: int
    rows: int
    start_us: int | None
    end_us: int | None
    share_drifted: float
    dataset_drift: bool
    drifted_features: list[str]
    prediction_drift: bool
    features: list[dict[str, Any]] = field(default_factory=list)
    prediction: dict[str, Any] = field(default_factory=dict)


def signals(c: dict[str, np.ndarray], config: MonitorConfig) -> dict[str, np.ndarray]:
    """Threshold crossings per statistic, as boolean vectors (NaN never crosses). A distance
    must also clear its noise floor (``effective_thresholds``)."""
    limits = effective_thresholds(c, config)
    with np.errstate(invalid="ignore"):
        null_increase = c["null_rate"] - np.nan_to_num(c["ref_null_rate"])
        return {
            "psi": c["psi"] >= limits["psi"],
            "wasserstein": c["wasserstein"] >= limits["wasserstein"],
            "js": c["js"] >= limits["js"],
            "null_rate": null_increase >= config.null_rate_threshold,
            "unseen_share": c["unseen_share"] >= config.unseen_threshold,
            "ks_pvalue": c["ks_pvalue"] < config.ks_pvalue,
            "chi2_pvalue": c["chi2_pvalue"] < config.chi2_pvalue,
        }


def effective_thresholds(c: dict[str, np.ndarray], config: MonitorConfig) -> dict[str, np.ndarray]:
    """Per window and column: the larger of each distance's threshold and its noise floor
    (what sampling noise alone reaches at this window's and the reference's sizes)."""
    out = {}
    for key, threshold in (("psi", config.psi_threshold), ("wasserstein",
                           config.wasserstein_threshold), ("js", config.js_threshold)):  # fmt: skip
        floor = c.get(f"{key}_floor")
        base = np.full(len(c["window_id"]), threshold, dtype=np.float64)
        out[key] = base if floor is None else np.fmax(base, floor)
    return out


def compute_windows(
    store: MonitorStore,
    config: MonitorConfig,
    *,
    now: float,
    on_chunk: Callable[[list[WindowSummary]], None] | None = None,
) -> list[WindowSummary]:
    """Statistics, decisions and summaries of every complete, not yet computed window.

    Windows go in chunks (each committed before the next) sized so that the statistics
    query fits DuckDB's memory limit (``chunk_windows``); streaks carry over through the
    stored results. ``on_chunk(summaries)`` runs inside each chunk's transaction (the monitor
    queues the chunk's alerts there): a chunk's summaries and its alerts are stored together
    or not at all, so a process killed in between loses neither.
    """
    pending = store.pending_windows()
    out: list[WindowSummary] = []
    if not pending:
        return out
    step = chunk_windows(store, config.duckdb_memory_limit)
    for start in range(0, len(pending), step):
        chunk = pending[start : start + step]
        out += _compute_chunk(store, config, chunk, now=now, on_chunk=on_chunk)
    return out


MAX_CHUNK_WINDOWS = 50
# bytes the statistics query needs per reference bin of a window, at most (measured: 20
# windows of 34 columns x 1,021 bins ran out of 64 MB, 10 did not: between 92 and 184 bytes);
# a chunk that still runs out is split in halves (``_statistics``)
BYTES_PER_BIN = 180


def chunk_windows(store: MonitorStore, memory_limit: str | None) -> int:
    """How many windows one statistics query may take: the memory limit over the bins a
    window of the widest version has (fine bins of every numeric column, categories)."""
    limit = parse_bytes(memory_limit)
    if limit is None:
        return MAX_CHUNK_WINDOWS // 2
    bins = store.widest_version_bins()
    return max(1, min(MAX_CHUNK_WINDOWS, limit // (BYTES_PER_BIN * bins)))


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}  # fmt: skip


def parse_bytes(text: str | None) -> int | None:
    """Bytes in a DuckDB size setting (``"64MB"``, ``"1.5 GiB"``); None for anything else
    (a percentage, no limit).

    >>> parse_bytes("64MB"), parse_bytes("1 GiB"), parse_bytes("80%")
    (64000000, 1073741824, None)
    """
    if not text:
        return None
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    if match is None or match.group(2).upper() not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _statistics(
    store: MonitorStore, window_ids: list[int], noise_z: float
) -> dict[str, np.ndarray]:
    """``window_statistics``, in halves while DuckDB runs out of its memory limit (a model
    with hundreds of features needs more per window than ``CHUNK_WINDOWS`` assumes)."""
    try:
        return window_statistics(store, window_ids, noise_z=noise_z)
    except duckdb.OutOfMemoryException:
        if len(window_ids) == 1:
            raise
    half = len(window_ids) // 2
    first = _statistics(store, window_ids[:half], noise_z)
    second = _statistics(store, window_ids[half:], noise_z)
    return {key: np.concatenate([first[key], second[key]]) for key in first}


def _compute_chunk(
    store: MonitorStore,
    config: MonitorConfig,
    pending: list[WindowRow],
    *,
    now: float,
    on_chunk: Callable[[list[WindowSummary]], None] | None,
) -> list[WindowSummary]:
    position = {p.window_id: i for i, p in enumerate(pending)}
    c = _statistics(store, list(position), config.noise_z)
    slots = np.array([position[int(w)] for w in c["window_id"]], dtype=np.int64)
    order = np.lexsort((c["name"].astype(str), slots))
    c = {k: v[order] for k, v in c.items()}
    n = len(c["window_id"])
    win_rows = np.array([pending[position[int(w)]].rows for w in c["window_id"]], dtype=np.int64)
    hits = signals(c, config)
    raw = (win_rows >= config.min_rows) & np.logical_or.reduce([hits[d] for d in DECIDING])
    streak = np.zeros(n, dtype=np.int64)
    prev: dict[tuple[str, int, str], tuple[int, dict[str, int]]] = {}
    bounds = np.flatnonzero(np.diff(c["window_id"])) + 1
    for group in np.split(np.arange(n), bounds):
        if len(group) == 0:
            continue
        p = pending[position[int(c["window_id"][group[0]])]]
        key, seq = (p.model, p.version, p.route), p.seq
        if key not in prev:
            prev[key] = (seq - 1, store.streaks(key, seq - 1))
        last_seq, last = prev[key]
        base = last if last_seq == seq - 1 else {}  # a gap in the sequence breaks streaks
        current: dict[str, int] = {}
        for i in group:
            name = str(c["name"][i])
            streak[i] = base.get(name, 0) + 1 if raw[i] else 0
            current[name] = int(streak[i])
        prev[key] = (seq, current)
    drifted = streak >= config.consecutive
    summaries = _summaries(pending, position, c, hits, raw, streak, drifted, config)
    with store.transaction():
        _write(store, pending, c, hits, streak, drifted, win_rows, summaries, config, now=now)
        if on_chunk is not None:
            on_chunk(summaries)
    return summaries


def _value(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return float(v) if np.isfinite(v) else None
    return v


def _summaries(
    pending: list[WindowRow],
    position: dict[int, int],
    c: dict[str, np.ndarray],
    hits: dict[str, np.ndarray],
    raw: np.ndarray,
    streak: np.ndarray,
    drifted: np.ndarray,
    config: MonitorConfig,
) -> list[WindowSummary]:
    by_window: dict[int, list[int]] = {}
    for i, w in enumerate(c["window_id"]):
        by_window.setdefault(int(w), []).append(i)
    out = []
    for p in pending:
        wid = p.window_id
        features: list[dict[str, Any]] = []
        columns: list[dict[str, Any]] = []
        for i in by_window.get(wid, []):
            entry: dict[str, Any] = {"name": str(c["name"][i]), "kind": str(c["kind"][i])}
            entry.update({k: _value(c[k][i]) for k in REPORTED})
            entry.update(
                drifted=bool(drifted[i]),
                raw=bool(raw[i]),
                streak=int(streak[i]),
                signals={k: bool(v[i]) for k, v in hits.items()},
            )
            if c["role"][i] == "feature":
                features.append(entry)
            else:
                entry["role"] = str(c["role"][i])
                columns.append(entry)
        share, dataset = dataset_decision(
            [f["drifted"] for f in features], window_rows=p.rows, config=config
        )
        prediction = {"drifted": any(x["drifted"] for x in columns), "columns": columns}
        out.append(
            WindowSummary(
                window_id=wid,
                model=p.model,
                version=p.version,
                route=p.route,
                seq=p.seq,
                rows=p.rows,
                start_us=p.start_us,
                end_us=p.end_us,
                share_drifted=share,
                dataset_drift=dataset,
                drifted_features=[f["name"] for f in features if f["drifted"]],
                prediction_drift=bool(prediction["drifted"]),
                features=features,
                prediction=prediction,
            )
        )
    return out


def _results_table(
    pending: list[WindowRow],
    c: dict[str, np.ndarray],
    hits: dict[str, np.ndarray],
    streak: np.ndarray,
    drifted: np.ndarray,
    win_rows: np.ndarray,
    config: MonitorConfig,
    now: float,
) -> pa.Table:
    n = len(c["window_id"])
    limits = effective_thresholds(c, config)
    meta = {p.window_id: p for p in pending}
    rows = [meta[int(w)] for w in c["window_id"]]

    def full(v: float) -> pa.Array:
        return pa.array(np.full(n, v, dtype=np.float64))

    def num(key: str) -> pa.Array:
        return pa.array(c[key], mask=~np.isfinite(c[key]))

    return pa.table(
        {
            "window_id": pa.array(c["window_id"]),
            "model": pa.array([r.model for r in rows], pa.string()),
            "version": pa.array([r.version for r in rows], pa.int64()),
            "route": pa.array([r.route for r in rows], pa.string()),
            "seq": pa.array([r.seq for r in rows], pa.int64()),
            "name": pa.array(c["name"].tolist(), pa.string()),
            "role": pa.array(c["role"].tolist(), pa.string()),
            "kind": pa.array(c["kind"].tolist(), pa.string()),
            "rows": pa.array(win_rows),
            "psi": num("psi"),
            "psi_threshold": pa.array(limits["psi"]),
            "psi_drift": pa.array(hits["psi"]),
            "wasserstein": num("wasserstein"),
            "wasserstein_threshold": pa.array(limits["wasserstein"]),
            "wasserstein_drift": pa.array(hits["wasserstein"]),
            "js": num("js"),
            "js_threshold": pa.array(limits["js"]),
            "js_drift": pa.array(hits["js"]),
            "null_rate": num("null_rate"),
            "ref_null_rate": num("ref_null_rate"),
            "null_rate_threshold": full(config.null_rate_threshold),
            "null_rate_drift": pa.array(hits["null_rate"]),
            "unseen_share": num("unseen_share"),
            "unseen_share_threshold": full(config.unseen_threshold),
            "unseen_share_drift": pa.array(hits["unseen_share"]),
            "ks": num("ks"),
            "ks_pvalue": num("ks_pvalue"),
            "ks_pvalue_threshold": full(config.ks_pvalue),
            "ks_pvalue_signal": pa.array(hits["ks_pvalue"]),
            "chi2": num("chi2"),
            "chi2_pvalue": num("chi2_pvalue"),
            "chi2_pvalue_threshold": full(config.chi2_pvalue),
            "chi2_pvalue_signal": pa.array(hits["chi2_pvalue"]),
            "wasserstein_abs": num("wasserstein_abs"),
            "mean": num("mean"),
            "streak": pa.array(streak.astype(np.int32)),
            "consecutive": pa.array(np.full(n, config.consecutive, dtype=np.int32)),
            "drifted": pa.array(drifted),
            "computed_at": full(now),
        }
    )


def _write(
    store: MonitorStore,
    pending: list[WindowRow],
    c: dict[str, np.ndarray],
    hits: dict[str, np.ndarray],
    streak: np.ndarray,
    drifted: np.ndarray,
    win_rows: np.ndarray,
    summaries: list[WindowSummary],
    config: MonitorConfig,
    *,
    now: float,
) -> None:
    results = _results_table(pending, c, hits, streak, drifted, win_rows, config, now)
    summary_table = pa.table(
        {
            "window_id": pa.array([s.window_id for s in summaries], pa.int64()),
            "model": pa.array([s.model for s in summaries], pa.string()),
            "version": pa.array([s.version for s in summaries], pa.int64()),
            "route": pa.array([s.route for s in summaries], pa.string()),
            "seq": pa.array([s.seq for s in summaries], pa.int64()),
            "rows": pa.array([s.rows for s in summaries], pa.int64()),
            "n_features": pa.array([len(s.features) for s in summaries], pa.int32()),
            "n_drifted": pa.array([len(s.drifted_features) for s in summaries], pa.int32()),
            "share_drifted": pa.array([s.share_drifted for s in summaries], pa.float64()),
            "share_threshold": pa.array(
                [config.dataset_drift_share] * len(summaries), pa.float64()
            ),
            "dataset_drift": pa.array([s.dataset_drift for s in summaries], pa.bool_()),
            "drifted_features": pa.array(
                [s.drifted_features for s in summaries], pa.list_(pa.string())
            ),
            "prediction": pa.array([json.dumps(s.prediction) for s in summaries], pa.string()),
            "performance": pa.nulls(len(summaries), pa.string()),
            "labelled_rows": pa.array([0] * len(summaries), pa.int64()),
            "computed_at": pa.array([now] * len(summaries), pa.float64()),
        }
    )
    store.replace_results([p.window_id for p in pending], results, summary_table)


def refresh_performance(
    store: MonitorStore, *, now: float, min_labels: int = 50
) -> list[tuple[int, dict[str, Any]]]:
    """Recompute metrics of windows whose labelled row count changed; returns them."""
    counts = store.labelled_counts()
    if not counts:
        return []
    known = store.summary_labelled_rows()
    changed: list[tuple[int, dict[str, Any]]] = []
    for wid, n in sorted(counts.items()):
        if wid not in known or known[wid] == n:
            continue
        meta = store.window_task(wid)
        if meta is None:
            continue
        task, classes = meta
        perf = window_performance(store, wid, task=task, classes=classes)
        perf["enough_labels"] = n >= min_labels
        store.set_performance(wid, perf, n)
        changed.append((wid, perf))
    return changed
