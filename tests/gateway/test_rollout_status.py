"""Rollout figures from real Parquet prediction segments (logschema columns) with DuckDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from gateway.rollout_status import rollout_stats
from registry import logschema
from registry.model import Canary, Route, Shadow

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _row(
    request_id: str,
    version: int,
    route: str,
    prediction: Any,
    *,
    latency_us: int = 1000,
    status: int = 200,
    ts: datetime = NOW - timedelta(seconds=30),
) -> dict[str, Any]:
    ok = status == 200
    return {
        "ts": ts,
        "request_id": request_id,
        "model": "churn",
        "version": version,
        "route": route,
        logschema.feature_column("age"): 1.0 if ok else None,
        "prediction": prediction if ok else None,
        logschema.proba_column(0): 0.5 if ok else None,
        logschema.proba_column(1): 0.5 if ok else None,
        "latency_us": latency_us,
        "batch_rows": 1,
        "status": status,
    }


def _write(
    logs: Path, rows: list[dict[str, Any]], *, name: str = "w1-0", day: str | None = None
) -> None:
    day = day or rows[0]["ts"].date().isoformat()
    directory = Path(logschema.segment_dir(str(logs), logschema.PREDICTIONS, "churn", day))
    directory.mkdir(parents=True, exist_ok=True)
    numeric = isinstance(
        next((r["prediction"] for r in rows if r["prediction"] is not None), ""), float
    )
    frame = pl.DataFrame(
        rows,
        schema_overrides={
            "ts": pl.Datetime("us", "UTC"),
            "version": pl.Int64,
            "latency_us": pl.Int64,
            "batch_rows": pl.Int64,
            "status": pl.Int64,
            "prediction": pl.Float64 if numeric else pl.String,
        },
    )
    tmp = directory / f".{name}.parquet.tmp"
    frame.write_parquet(tmp)
    tmp.rename(directory / f"{name}.parquet")


def _by_route(stats: Any) -> dict[tuple[str, int], Any]:
    return {(r.route, r.version): r for r in stats.routes}


def test_missing_logs_give_zeros_for_every_routed_version(tmp_path: Path) -> None:
    route = Route(champion=1, canary=Canary(2, 20), shadows=[Shadow(3)])
    stats = rollout_stats(str(tmp_path / "nowhere"), "churn", route=route, now=NOW)
    assert stats.segments == 0
    assert [
        (r.route, r.version, r.requests, r.error_rate, r.p99_ms, r.agreement) for r in stats.routes
    ] == [
        ("champion", 1, 0, 0.0, 0.0, None),
        ("canary", 2, 0, 0.0, 0.0, None),
        ("shadow", 3, 0, 0.0, 0.0, None),
    ]
    (tmp_path / "empty" / "predictions" / "model=churn").mkdir(parents=True)
    assert rollout_stats(str(tmp_path / "empty"), "churn", now=NOW).routes == []


def test_requests_errors_and_latency_percentiles_per_route(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    champ_lat = rng.integers(500, 5000, size=200)
    canary_lat = rng.integers(1000, 9000, size=50)
    rows = [_row(f"c{i}", 1, "champion", "1", latency_us=int(v)) for i, v in enumerate(champ_lat)]
    rows += [
        _row(f"k{i}", 2, "canary", "1", latency_us=int(v), status=500 if i < 5 else 200)
        for i, v in enumerate(canary_lat)
    ]
    rows.append(_row("bad", 1, "champion", None, status=400))
    _write(tmp_path, rows[:120], name="w1-0")
    _write(tmp_path, rows[120:], name="w2-0")  # a second worker's segment
    stats = rollout_stats(
        "file://" + str(tmp_path), "churn", route=Route(champion=1, canary=Canary(2, 20)), now=NOW
    )
    got = _by_route(stats)
    champ, canary = got[("champion", 1)], got[("canary", 2)]
    assert (champ.requests, champ.errors, champ.client_errors) == (201, 0, 1)
    assert (canary.requests, canary.errors, canary.error_rate) == (50, 5, 0.1)
    all_champ = np.append(champ_lat, 1000)
    assert champ.p50_ms == pytest.approx(np.percentile(all_champ, 50) / 1000)
    assert champ.p99_ms == pytest.approx(np.percentile(all_champ, 99) / 1000)
    assert canary.p99_ms == pytest.approx(np.percentile(canary_lat, 99) / 1000)
    assert stats.segments == 2 and stats.champion == 1


def test_shadow_agreement_matches_rows_by_request_and_position(tmp_path: Path) -> None:
    rows = []
    for i in range(100):
        rows.append(_row(f"r{i}", 1, "champion", "yes"))
        rows.append(_row(f"r{i}", 3, "shadow", "no" if i % 4 == 0 else "yes", latency_us=50_000))
    # a 3-row request, rows logged as <id>/<i>: the shadow disagrees only on its second row
    pairs = [("a", "a"), ("b", "c"), ("d", "d")]
    rows += [_row(f"multi/{i}", 1, "champion", c) for i, (c, _) in enumerate(pairs)]
    # (written in reverse order: the id, not the position, pairs them)
    rows += [_row(f"multi/{i}", 3, "shadow", s) for i, (_, s) in reversed(list(enumerate(pairs)))]
    # an older log that repeats one id per row: rows are paired by position
    rows += [_row("legacy", 1, "champion", c) for c, _ in pairs]
    rows += [_row("legacy", 3, "shadow", s) for _, s in pairs]
    # a failed shadow row is not compared
    rows.append(_row("r-failed", 1, "champion", "yes"))
    rows.append(_row("r-failed", 3, "shadow", None, status=500))
    _write(tmp_path, rows)
    route = Route(champion=1, shadows=[Shadow(3)])
    shadow = _by_route(rollout_stats(str(tmp_path), "churn", route=route, now=NOW))[("shadow", 3)]
    assert shadow.compared == 106
    assert shadow.agreement == pytest.approx((75 + 2 + 2) / 106)
    assert shadow.errors == 1 and shadow.mean_abs_diff is None
    assert (shadow.requests, shadow.rows) == (103, 107)  # multi/0..2 is one request
    assert shadow.p50_ms == pytest.approx(50.0)


def test_canary_agreement_from_explicit_champion_answers(tmp_path: Path) -> None:
    rows = [_row(f"k{i}", 2, "canary", "1") for i in range(10)]
    rows += [_row(f"k{i}", 1, "explicit", "1" if i < 8 else "0") for i in range(10)]
    rows += [_row(f"c{i}", 1, "champion", "1") for i in range(10)]
    _write(tmp_path, rows)
    stats = rollout_stats(str(tmp_path), "churn", now=NOW)  # champion inferred from the log
    canary = _by_route(stats)[("canary", 2)]
    assert stats.champion == 1
    assert (canary.compared, canary.agreement) == (10, 0.8)
    assert _by_route(stats)[("champion", 1)].agreement is None


def test_regression_agreement_uses_relative_tolerance(tmp_path: Path) -> None:
    rows = []
    for i, (c, s) in enumerate([(100.0, 104.0), (100.0, 106.0), (10.0, 10.0), (-50.0, -52.0)]):
        rows.append(_row(f"r{i}", 1, "champion", c))
        rows.append(_row(f"r{i}", 2, "shadow", s))
    _write(tmp_path, rows)
    route = Route(champion=1, shadows=[Shadow(2)])
    shadow = _by_route(rollout_stats(str(tmp_path), "churn", route=route, now=NOW))[("shadow", 2)]
    assert shadow.agreement == pytest.approx(3 / 4)
    assert shadow.mean_abs_diff == pytest.approx((4 + 6 + 0 + 2) / 4)


def test_window_excludes_old_rows_and_old_days(tmp_path: Path) -> None:
    old = NOW - timedelta(days=2)
    _write(tmp_path, [_row("old", 1, "champion", "1", ts=old)], name="w1-0")
    _write(
        tmp_path,
        [
            _row("stale", 1, "champion", "1", ts=NOW - timedelta(minutes=20)),
            _row("fresh", 1, "champion", "1", ts=NOW - timedelta(minutes=5)),
        ],
        name="w1-1",
    )
    stats = rollout_stats(str(tmp_path), "churn", now=NOW)
    assert stats.segments == 1  # the day two days ago is not even read
    assert _by_route(stats)[("champion", 1)].requests == 1
    wide = rollout_stats(str(tmp_path), "churn", now=NOW, window_s=3 * 86400)
    assert _by_route(wide)[("champion", 1)].requests == 3


@pytest.mark.s3
def test_logs_on_s3(make_bucket: Any, tmp_path: Path) -> None:
    import fsspec

    bucket = make_bucket()
    rows = [_row("r1", 1, "champion", "1"), _row("r1", 3, "shadow", "0")]
    _write(tmp_path, rows)
    fs = fsspec.filesystem("s3")
    local = next(tmp_path.rglob("*.parquet"))
    fs.put_file(str(local), f"{bucket}/logs/{local.relative_to(tmp_path)}")
    stats = rollout_stats(f"s3://{bucket}/logs", "churn", now=NOW)
    got = _by_route(stats)
    assert stats.segments == 1
    assert got[("champion", 1)].requests == 1
    assert (got[("shadow", 3)].compared, got[("shadow", 3)].agreement) == (1, 0.0)


def _bad_segments(logs: Path) -> dict[str, str]:
    """A truncated segment, a text file, and one whose status column holds strings."""
    directory = Path(logschema.segment_dir(str(logs), logschema.PREDICTIONS, "churn",
                                           NOW.date().isoformat()))  # fmt: skip
    good = (directory / "w1-0.parquet").read_bytes()
    (directory / "w2-0.parquet").write_bytes(good[: len(good) // 2])
    (directory / "w3-0.parquet").write_bytes(b"not parquet at all")
    rows = [_row("x1", 1, "champion", "1")]
    pl.DataFrame(rows).with_columns(pl.col("status").cast(pl.String)).write_parquet(
        directory / "w4-0.parquet"
    )
    return {
        "w2-0.parquet": "not a readable Parquet file",
        "w3-0.parquet": "not a readable Parquet file",
        "w4-0.parquet": "column 'status': expected integer, got",
    }


def test_a_bad_segment_is_reported_and_the_others_still_counted(tmp_path: Path) -> None:
    _write(tmp_path, [_row(f"r{i}", 1, "champion", "1") for i in range(7)])
    expected = _bad_segments(tmp_path)
    stats = rollout_stats(str(tmp_path), "churn", route=Route(champion=1), now=NOW)
    assert _by_route(stats)[("champion", 1)].requests == 7
    assert stats.segments == 1
    reported = {Path(b.path).name: b.reason for b in stats.bad_segments}
    assert reported.keys() == expected.keys()
    for name, start in expected.items():
        assert reported[name].startswith(start), reported[name]
