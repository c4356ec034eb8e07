"""The prediction/feedback log writer: columns, flush triggers, drops, atomic segments."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from gateway.logwriter import FeedbackRecord, LogLayout, LogWriter, PredictionRecord
from gateway.schema import InputSpec, OutputSpec
from gateway.settings import GatewaySettings, SettingsError
from registry.logschema import FEEDBACK_COLUMNS
from registry.model import Feature, OutputSchema

CLASSIFIER = LogLayout(
    InputSpec([Feature("age"), Feature("color", "object", ["red", "green"])], allows_nan=True),
    OutputSpec(OutputSchema("classification", [0, 1]), np.array([0, 1])),
)
REGRESSOR = LogLayout(
    InputSpec([Feature("age"), Feature("size")], allows_nan=False),
    OutputSpec(OutputSchema("regression"), None),
)
TS = 1_795_000_000_000_000  # 2026-11-18 UTC, in µs


def record(request_id: str, rows: int = 1, *, layout: LogLayout = CLASSIFIER,
           ok: bool = True, version: int = 1, ts_us: int = TS) -> PredictionRecord:  # fmt: skip
    X = np.tile(np.array([[30.0, 1.0]], dtype=np.float32), (rows, 1))
    outputs = None
    if ok and layout is CLASSIFIER:
        outputs = {"predict": np.ones(rows, dtype=np.int64),
                   "predict_proba": np.tile([[0.25, 0.75]], (rows, 1))}  # fmt: skip
    elif ok:
        outputs = {"predict": np.full(rows, 2.5)}
    return PredictionRecord(
        ts_us=ts_us, request_id=request_id, model="m", version=version, route="champion",
        layout=layout, X=X, outputs=outputs, latency_us=120, batch_rows=rows,
        status=200 if ok else 400,
    )  # fmt: skip


def read(root: Path, kind: str = "predictions") -> pl.DataFrame:
    files = sorted(root.glob(f"{kind}/model=m/date=*/*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")


def test_segments_have_the_logschema_columns_and_nulls_for_failures(tmp_path: Path) -> None:
    writer = LogWriter(str(tmp_path), worker_id="w1")
    writer.append(record("a", rows=2))
    writer.append(record("b", ok=False))
    assert writer.flush() == 3
    frame = read(tmp_path)
    assert frame.columns == [
        "ts", "request_id", "model", "version", "route", "in_age", "in_color", "prediction",
        "proba_0", "proba_1", "latency_us", "batch_rows", "status",
    ]  # fmt: skip
    # row i of a multi-row request is logged as <request id>/<i>
    assert frame["request_id"].to_list() == ["a/0", "a/1", "b"]
    assert frame["in_color"].to_list() == ["green", "green", None]
    assert frame["prediction"].to_list() == ["1", "1", None]
    assert frame["proba_1"].to_list() == [0.75, 0.75, None]
    assert frame["status"].to_list() == [200, 200, 400]
    assert frame["ts"].dtype == pl.Datetime("us", "UTC")
    path = next(tmp_path.glob("predictions/model=m/date=2026-11-18/*.parquet"))
    assert path.name == "w1-000001.parquet"


@pytest.mark.parametrize(("codec", "stored"), [(None, "LZ4"), ("zstd", "ZSTD")])
def test_segments_are_compressed_with_the_configured_codec(
    tmp_path: Path, codec: str | None, stored: str
) -> None:
    writer = LogWriter(str(tmp_path), **({} if codec is None else {"compression": codec}))
    writer.append(record("a", rows=3))
    writer.flush()
    meta = pq.ParquetFile(next(tmp_path.glob("predictions/model=m/date=*/*.parquet"))).metadata
    codecs = {meta.row_group(0).column(i).compression for i in range(meta.num_columns)}
    assert codecs == {stored}
    assert read(tmp_path)["request_id"].to_list() == ["a/0", "a/1", "a/2"]


def test_unknown_codec_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="compression.*'gzip'"):
        LogWriter("/nonexistent", compression="gzip")
    with pytest.raises(SettingsError, match="log_compression.*lz4, zstd"):
        GatewaySettings(log_compression="gzip")


def test_rows_go_to_the_segment_of_their_utc_day(tmp_path: Path) -> None:
    midnight = 1_795_046_400_000_000  # 2026-11-19T00:00:00Z, in µs
    writer = LogWriter(str(tmp_path), worker_id="w1")
    for request_id, ts in (("a", midnight - 1), ("b", midnight), ("c", midnight - 86_400_000_001)):
        writer.append(record(request_id, ts_us=ts))
    writer.flush()
    days = {
        path.parent.name: pl.read_parquet(path)["request_id"].to_list()
        for path in tmp_path.glob("predictions/model=m/date=*/*.parquet")
    }
    assert days == {"date=2026-11-17": ["c"], "date=2026-11-18": ["a"], "date=2026-11-19": ["b"]}


def test_versions_with_other_inputs_share_a_segment(tmp_path: Path) -> None:
    writer = LogWriter(str(tmp_path), worker_id="w1")
    writer.append(record("a"))
    writer.append(record("r", layout=REGRESSOR, version=2))
    writer.append(record("f", layout=REGRESSOR, version=2, ok=False))
    writer.close()
    frame = read(tmp_path).sort("request_id")
    assert frame["version"].to_list() == [1, 2, 2]
    assert frame["in_size"].to_list() == [None, None, 1.0]


def test_flushes_on_rows_and_on_time_and_drops_when_full(tmp_path: Path) -> None:
    writer = LogWriter(str(tmp_path), worker_id="w2", flush_rows=4, flush_interval_s=0.2,
                       buffer_rows=6)  # fmt: skip
    writer.start()
    try:
        for i in range(4):
            assert writer.append(record(f"r{i}"))
        deadline = time.monotonic() + 10
        while writer.rows_written["predictions"] < 4:  # the row threshold woke the writer
            assert time.monotonic() < deadline
            time.sleep(0.01)
        writer.append(record("late"))
        while writer.rows_written["predictions"] < 5:  # the interval flushed the rest
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        writer.close()
    full = LogWriter(str(tmp_path / "full"), buffer_rows=3)
    assert full.append(record("x", rows=3))
    assert not full.append(record("y"))
    assert full.rows_dropped["predictions"] == 1
    full.close()
    assert full.rows_written["predictions"] == 3
    assert not full.append(record("after-close"))


def test_feedback_segments(tmp_path: Path) -> None:
    writer = LogWriter(str(tmp_path), worker_id="w3")
    writer.append(FeedbackRecord(ts_us=TS, request_id="a", model="m", label="yes"))
    writer.append(FeedbackRecord(ts_us=TS, request_id="b", model="m", label=2))
    writer.close()
    frame = read(tmp_path, "feedback")
    assert frame.columns == list(FEEDBACK_COLUMNS)
    assert frame["label"].to_list() == ["yes", "2"]
    assert frame["label_value"].to_list() == [None, 2.0]


def test_fsspec_url(tmp_path: Path) -> None:
    import fsspec

    url = "memory://mlgate-test-logs"
    writer = LogWriter(url, worker_id="w4")
    writer.append(record("a"))
    writer.close()
    fs = fsspec.filesystem("memory")
    files = fs.glob("/mlgate-test-logs/predictions/model=m/date=*/*.parquet")
    assert [f.rsplit("/", 1)[1] for f in files] == ["w4-000001.parquet"]
    with fs.open(files[0], "rb") as f:
        assert pl.read_parquet(f)["request_id"].to_list() == ["a"]
    fs.rm("/mlgate-test-logs", recursive=True)
