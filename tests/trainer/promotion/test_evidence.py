"""The rollout's figures read from real Parquet segments with DuckDB: requests, errors,
latency, pairs and labelled pairs counted exactly, locally and on S3 (moto server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from monitor.ingest.logstore import LogStore
from registry import logschema
from trainer.promotion import evidence

NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(seconds=120)
STEP = NOW - timedelta(seconds=60)


def _pred(rid: str, version: int, route: str, pred: Any, *, at: datetime, status: int = 200,
          latency_ms: float = 1.0) -> dict[str, Any]:  # fmt: skip
    return {"ts": at, "request_id": rid, "model": "m", "version": version, "route": route,
            "in_x": 1.0, "prediction": pred if status == 200 else None,
            "latency_us": int(latency_ms * 1000), "batch_rows": 1, "status": status}  # fmt: skip


def _write(logs: Path, kind: str, rows: list[dict[str, Any]], name: str) -> Path:
    directory = Path(logschema.segment_dir(str(logs), kind, "m", rows[0]["ts"].date().isoformat()))
    directory.mkdir(parents=True, exist_ok=True)
    frame = pl.DataFrame(rows, schema_overrides={"ts": pl.Datetime("us", "UTC")})
    frame.write_parquet(directory / f"{name}.parquet")
    return directory / f"{name}.parquet"


def _window(*, regression: bool = False, maturity_s: float = 30.0) -> evidence.Window:
    return evidence.Window(rollout_since=START, step_since=STEP, until=NOW,
                           matured_before=NOW - timedelta(seconds=maturity_s), candidate=2,
                           champion=1, quantile=0.5, regression=regression)  # fmt: skip


def _classifier_logs(logs: Path) -> None:
    old, new = NOW - timedelta(seconds=90), NOW - timedelta(seconds=10)
    rows = [
        # before the rollout: not counted
        _pred("r0", 1, "champion", "a", at=START - timedelta(seconds=5)),
        # shadow pairs in the rollout, before the step (old enough for labels)
        _pred("r1", 1, "champion", "a", at=old), _pred("r1", 2, "shadow", "a", at=old),
        _pred("r2", 1, "champion", "b", at=old), _pred("r2", 2, "shadow", "a", at=old),
        _pred("r3", 1, "champion", "a", at=old), _pred("r3", 2, "shadow", "c", at=old),
        # in the step: a two-row request on the canary (one request, its slowest row)
        _pred("r4/0", 2, "canary", "a", at=new, latency_ms=3.0),
        _pred("r4/1", 2, "canary", "b", at=new, latency_ms=5.0),
        # a failed canary request, a champion request and a fresh shadow pair
        _pred("r5", 2, "canary", None, at=new, status=500, latency_ms=9.0),
        _pred("r6", 1, "champion", "a", at=new, latency_ms=2.0),
        _pred("r6", 2, "shadow", "b", at=new, latency_ms=4.0),
    ]  # fmt: skip
    _write(logs, logschema.PREDICTIONS, rows, "w1-1")
    labels = [{"ts": NOW, "request_id": rid, "model": "m", "label": label, "label_value": None}
              for rid, label in (("r1", "a"), ("r2", "a"), ("r3", "a"), ("r6", "b"))]  # fmt: skip
    _write(logs, logschema.FEEDBACK, labels, "w1-2")


def test_counts_are_exact(tmp_path: Path) -> None:
    _classifier_logs(tmp_path)
    got = evidence.gather(LogStore(str(tmp_path)), "m", _window())
    # step window: candidate = r4 (canary), r5 (canary, 500), r6 (shadow)
    assert got.candidate == evidence.Side(requests=3, errors=1, quantile_ms=5.0,
                                          canary_requests=2)  # fmt: skip
    assert sorted(got.latencies_ms) == [4.0, 5.0, 9.0]
    assert got.champion.requests == 1 and got.champion.quantile_ms == 2.0
    assert got.champion_rollout.requests == 4  # r1, r2, r3, r6
    # pairs over the rollout: r1 agree, r2 and r3 disagree, r6 disagrees
    assert (got.compared, got.agreed) == (4, 1)
    # matured (older than 30 s): r1, r2, r3; r2: candidate right, champion wrong (better);
    # r3: champion right, candidate wrong (worse); r1 both right; r6 too fresh to count
    assert (got.matured, got.pairs, got.better, got.worse) == (3, 3, 1, 1)
    assert got.has_feedback and got.segments == 1


def test_a_shorter_maturity_counts_fresher_labels(tmp_path: Path) -> None:
    _classifier_logs(tmp_path)
    got = evidence.gather(LogStore(str(tmp_path)), "m", _window(maturity_s=5.0))
    assert (got.pairs, got.better, got.worse) == (4, 2, 1)  # r6: candidate right


def test_regressors_pair_on_absolute_error(tmp_path: Path) -> None:
    old = NOW - timedelta(seconds=90)
    rows = [
        _pred("r1", 1, "champion", 10.0, at=old), _pred("r1", 2, "shadow", 10.2, at=old),
        _pred("r2", 1, "champion", 10.0, at=old), _pred("r2", 2, "shadow", 14.0, at=old),
        _pred("r3", 1, "champion", 10.0, at=old), _pred("r3", 2, "shadow", 10.0, at=old),
    ]  # fmt: skip
    _write(tmp_path, logschema.PREDICTIONS, rows, "w1-1")
    labels = [{"ts": NOW, "request_id": rid, "model": "m", "label": str(y), "label_value": y}
              for rid, y in (("r1", 10.5), ("r2", 13.0), ("r3", 10.0))]  # fmt: skip
    _write(tmp_path, logschema.FEEDBACK, labels, "w1-2")
    got = evidence.gather(LogStore(str(tmp_path)), "m", _window(regression=True))
    assert (got.compared, got.agreed) == (3, 2)  # r2 is 40 % off, beyond the 5 % tolerance
    assert (got.pairs, got.better, got.worse) == (3, 2, 0)  # r1 and r2 closer, r3 a tie


def test_no_logs_give_zeros(tmp_path: Path) -> None:
    got = evidence.gather(LogStore(str(tmp_path / "nothing")), "m", _window())
    assert got.candidate.requests == 0 and got.compared == 0 and not got.has_feedback


@pytest.mark.s3
def test_logs_on_s3_give_the_same_figures(make_bucket: Any, tmp_path: Path) -> None:
    import fsspec

    _classifier_logs(tmp_path / "local")
    bucket = make_bucket()
    fs = fsspec.filesystem("s3")
    for path in (tmp_path / "local").rglob("*.parquet"):
        fs.put_file(str(path), f"{bucket}/logs/{path.relative_to(tmp_path / 'local')}")
    local = evidence.gather(LogStore(str(tmp_path / "local")), "m", _window())
    remote = evidence.gather(LogStore(f"s3://{bucket}/logs"), "m", _window())
    assert remote == local


@pytest.mark.s3
def test_segments_written_later_are_seen_on_s3(make_bucket: Any, tmp_path: Path) -> None:
    import fsspec

    bucket = make_bucket()
    store = LogStore(f"s3://{bucket}/logs")
    fs = fsspec.filesystem("s3")
    old = NOW - timedelta(seconds=90)
    first = _write(tmp_path, logschema.PREDICTIONS, [_pred("r1", 1, "champion", "a", at=old)], "a")
    fs.put_file(str(first), f"{bucket}/logs/{first.relative_to(tmp_path)}")
    assert evidence.gather(store, "m", _window()).champion_rollout.requests == 1
    # another writer (a gateway, its own client) adds a segment: the next look sees it
    second = _write(tmp_path, logschema.PREDICTIONS, [_pred("r2", 1, "champion", "a", at=old)], "b")
    fresh = fsspec.filesystem("s3", skip_instance_cache=True)
    fresh.put_file(str(second), f"{bucket}/logs/{second.relative_to(tmp_path)}")
    assert evidence.gather(store, "m", _window()).champion_rollout.requests == 2
