"""Reading segments with pyarrow: every counted bin against numpy on the same rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import MonitorConfig
from monitor.ingest.segment import SegmentFile
from monitor.stats.binning import NumericBinner
from registry import Registry, logschema
from tests.monitor.conftest import T0_US, Logs, fit_classifier


def _frame(mv: Any, rows: list[dict[str, Any]]) -> pl.DataFrame:
    n = len(rows)
    return pl.DataFrame(
        {
            "ts": pl.Series([T0_US + 1000 * i for i in range(n)]).cast(pl.Datetime("us", "UTC")),
            "request_id": [f"r{i}" for i in range(n)],
            "model": [mv.name] * n,
            "version": pl.Series([r["version"] for r in rows], dtype=pl.Int64),
            "route": [r["route"] for r in rows],
            "in_f00": pl.Series([r["f00"] for r in rows], dtype=pl.Float64),
            "in_f01": pl.Series([r["f01"] for r in rows], dtype=pl.Float32),
            "in_f02": pl.Series([r["f02"] for r in rows], dtype=pl.Int64),
            "prediction": [r["prediction"] for r in rows],
            "proba_0": pl.Series([0.3] * n, dtype=pl.Float32),
            "proba_1": pl.Series([0.7] * n, dtype=pl.Float32),
            "status": pl.Series([r["status"] for r in rows], dtype=pl.Int64),
        }
    )


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    specials = [np.nan, np.inf, -np.inf, None, 0.0, 1e300, -1e300]
    out = []
    for i in range(n):
        f00 = specials[i % len(specials)] if i % 5 == 0 else float(rng.normal())
        out.append(
            {
                "version": [1, 1, 1, None, 7][i % 5] if i % 11 else 1,
                "route": "canary" if i % 3 == 0 else "champion",
                "f00": f00,
                "f01": float(rng.normal()),
                "f02": None if i % 13 == 0 else int(rng.integers(-3, 4)),
                "prediction": [None, "0", "1", "unseen-class"][i % 4],
                "status": [200, 200, 503, None, 200, 200][i % 6],
            }
        )
    return out


def _expected(rows: list[dict[str, Any]], route: str, name: str, boundaries: np.ndarray) -> Any:
    picked = [
        r for r in rows
        if r["version"] == 1 and r["route"] == route and r["status"] is not None
        and r["status"] < 400
    ]  # fmt: skip
    x = np.array([np.nan if r[name] is None else float(r[name]) for r in picked])
    if name == "f01":
        x = x.astype(np.float32).astype(np.float64)
    idx = NumericBinner(boundaries).bin_index(x)
    return np.bincount(idx[idx >= 0], minlength=len(boundaries) + 2), int((idx < 0).sum())


@pytest.mark.parametrize(
    ("window_rows", "read_columns"),
    [(100_000, 12), (100_000, 1), (97, 2)],
    ids=["one-read", "a-column-a-read", "small-windows-two-columns-a-read"],
)
def test_counts_of_a_mixed_segment_match_numpy(
    registry: Registry, logs: Logs, make_monitor: Any, window_rows: int, read_columns: int
) -> None:
    """Every bin of every window, however the segment's columns are split into reads
    (later reads count into the windows the first one cut, rows filtered by group)."""
    est, ref = fit_classifier(d=3)
    mv = registry.register("mixed", est, reference=ref)
    rows = _rows(2000, seed=1)
    logs.write(_frame(mv, rows), logschema.PREDICTIONS, mv.name, T0_US, "w1")
    m = make_monitor(MonitorConfig(window_rows=window_rows, read_columns=read_columns, min_rows=10))
    result = m.run_once()
    served = [r for r in rows if r["status"] is not None and r["status"] < 400]
    assert result.rows == sum(1 for r in served if r["version"] == 1)
    problems = [p["detail"] for p in m.store.problems("mixed")]
    assert any("version 7" in p for p in problems)
    assert any("without a version" in p for p in problems)
    version = m.store.version_row("mixed", int(mv.version))
    assert version is not None
    profile = m.store.load_profile(version["profile_id"])
    assert profile is not None
    found = m.store.con.execute(
        "SELECT w.route, w.rows, c.name, c.cum, c.nulls FROM window_counts c"
        " JOIN windows w USING (window_id) WHERE w.model = 'mixed'"
    ).fetchall()
    # summed over each route's windows (each window's rows add up to its row count)
    total: dict[tuple[str, str], tuple[np.ndarray, int, int]] = {}
    for route, n, name, cum, nulls in found:
        bins = np.diff(np.asarray(cum), prepend=0)
        assert bins.sum() + nulls == n, (route, name)
        if (route, name) in total:
            have, have_nulls, have_n = total[route, name]
            bins, nulls, n = bins + have, nulls + have_nulls, n + have_n
        total[route, name] = (bins, nulls, n)
    per_route = [
        sum(1 for r in served if r["version"] == 1 and r["route"] == route)
        for route in ("canary", "champion")
    ]
    windows = m.store.con.execute("SELECT count(*) FROM windows").fetchone()
    assert windows == (sum(-(-n // window_rows) for n in per_route),)
    checked = 0
    for (route, name), (bins, nulls, n) in total.items():
        if name not in ("f00", "f01", "f02"):
            continue
        counts, null_count = _expected(rows, route, name, profile.column(name).boundaries)
        assert bins.tolist() == counts.tolist(), (route, name)
        assert nulls == null_count and counts.sum() + null_count == n
        checked += 1
    assert checked == 6  # 3 features x 2 routes
    for route in ("canary", "champion"):
        bins, nulls, _ = total[route, "@prediction"]
        picked = [r["prediction"] for r in served if r["version"] == 1 and r["route"] == route]
        # codes: 0 unseen, 1 + position in the classes ("0", "1"); nulls apart
        want = [sum(p == "unseen-class" for p in picked), picked.count("0"), picked.count("1")]
        assert bins.tolist() == want
        assert nulls == picked.count(None)


def test_text_in_a_numeric_column_is_cast_like_sql(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    est, ref = fit_classifier(d=3)
    mv = registry.register("texty", est, reference=ref)
    n = 600
    values = ["0.5", "abc", None, "-2", "1e3", " 3 "] * (n // 6)
    frame = _frame(mv, [{"version": 1, "route": "champion", "f00": 0.0, "f01": 0.0, "f02": 0,
                         "prediction": "1", "status": 200}] * n)  # fmt: skip
    frame = frame.with_columns(pl.Series("in_f00", values, dtype=pl.String))
    logs.write(frame, logschema.PREDICTIONS, mv.name, T0_US, "w1")
    m = make_monitor(MonitorConfig(window_rows=n))
    assert m.run_once().rows == n
    version = m.store.version_row("texty", int(mv.version))
    assert version is not None
    profile = m.store.load_profile(version["profile_id"])
    assert profile is not None
    cum, nulls = m.store.con.execute(
        "SELECT cum, nulls FROM window_counts WHERE name = 'f00'"
    ).fetchone() or (None, None)
    x = np.array([0.5, np.nan, np.nan, -2.0, 1000.0, 3.0] * (n // 6))  # DuckDB TRY_CAST
    idx = NumericBinner(profile.column("f00").boundaries).bin_index(x)
    assert (
        np.diff(np.asarray(cum), prepend=0).tolist()
        == np.bincount(idx[idx >= 0], minlength=len(cum)).tolist()
    )
    assert nulls == int((idx < 0).sum())


def _write(path: Path, table: pa.Table, **kwargs: Any) -> str:
    pq.write_table(table, path, **kwargs)
    return str(path)


def test_groups_from_statistics_agree_with_reading(tmp_path: Path) -> None:
    n = 1000
    base = {
        "version": pa.array([3] * n, pa.int64()),
        "route": pa.array(["champion"] * n),
        "status": pa.array([200] * n, pa.int64()),
    }
    single = SegmentFile(_write(tmp_path / "a.parquet", pa.table(base), row_group_size=300),
                         display="a")  # fmt: skip
    assert single._single_group() is not None  # statistics prove one group: nothing read
    groups = single.groups()
    assert [(g.version, g.route, g.rows) for g in groups] == [(3, "champion", n)]
    no_stats = SegmentFile(_write(tmp_path / "b.parquet", pa.table(base), write_statistics=False),
                           display="b")  # fmt: skip
    assert no_stats._single_group() is None
    assert [(g.version, g.route, g.rows) for g in no_stats.groups()] == [(3, "champion", n)]
    mixed = dict(base)
    mixed["status"] = pa.array([200] * (n - 10) + [500] * 10, pa.int64())
    mixed["route"] = pa.array(["champion"] * 500 + ["canary"] * 500)
    failed = SegmentFile(_write(tmp_path / "c.parquet", pa.table(mixed)), display="c")
    assert failed._single_group() is None
    assert sorted((g.route, g.rows) for g in failed.groups()) == [("canary", 490),
                                                                  ("champion", 500)]  # fmt: skip
    empty = SegmentFile(_write(tmp_path / "d.parquet", pa.table(base).slice(0, 0)), display="d")
    assert empty.groups() == []


def test_empty_and_one_row_segments(registry: Registry, logs: Logs, make_monitor: Any) -> None:
    est, ref = fit_classifier(d=3)
    mv = registry.register("tiny", est, reference=ref)
    logs.predictions(mv, np.zeros((0, 3)))
    logs.predictions(mv, np.array([[0.1, np.nan, np.nan]]), estimator=est, start_us=T0_US + 10)
    m = make_monitor(MonitorConfig(window_rows=1))
    result = m.run_once()
    assert (result.rows, result.segments, result.problems) == (1, 2, 0)
    nulls = dict(
        m.store.con.execute("SELECT name, nulls FROM window_counts WHERE name LIKE 'f%'").fetchall()
    )
    assert nulls == {"f00": 0, "f01": 1, "f02": 1}


@settings(max_examples=150, deadline=None)
@given(
    first=st.integers(1, 50),
    head=st.integers(0, 300),
    width=st.integers(1, 100),
    tail=st.integers(0, 700),
    start=st.integers(1, 10**6),
)
def test_row_window_formula_matches_the_windows_it_replaces(
    first: int, head: int, width: int, tail: int, start: int
) -> None:
    """The SQL over ``file_row_number`` that stands in for the per-row window array gives
    every row the same window as the array, or is refused (None) when it cannot."""
    import duckdb

    from monitor.ingest.predictions import runs_formula

    def _window_formula(row_windows: np.ndarray) -> str | None:
        """The formula for a per-row window array: its runs (a row of no window: None)."""
        if len(row_windows) == 0 or int(row_windows.min()) < 0:
            return None
        starts = np.flatnonzero(np.diff(row_windows)) + 1
        bounds = [0, *starts.tolist(), len(row_windows)]
        return runs_formula(
            [[int(row_windows[a]), b - a] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        )

    def evaluate(expr: str, n: int) -> np.ndarray:
        sql = f"SELECT {expr} FROM (SELECT unnest(range({n})) AS file_row_number)"
        return np.asarray(next(iter(duckdb.sql(sql).fetchnumpy().values())))

    rows = np.concatenate(
        [np.full(head, first), start + np.arange(tail, dtype=np.int64) // width]
    ).astype(np.int64)
    if len(rows) == 0:
        assert _window_formula(rows) is None
        return
    expr = _window_formula(rows)
    assert expr is not None
    assert np.array_equal(evaluate(expr, len(rows)), rows)
    shuffled = rows.copy()
    shuffled[[0, -1]] = shuffled[[-1, 0]]  # a shape the formula may not describe
    formula = _window_formula(shuffled)
    assert formula is None or np.array_equal(evaluate(formula, len(rows)), shuffled)
