"""Background writer of the prediction and feedback log (Parquet segments, polars).

Serving only appends records to a bounded in-memory buffer (a lock and a list append); a
thread turns them into columns and writes one segment per model and UTC day every
``flush_rows`` rows or ``flush_interval_s`` seconds, and on close. Each segment is written
atomically (temp file + rename locally; a single PUT on object stores), named
``<worker>-<seq>.parquet`` so that workers never share a file. When the buffer is full, rows are
dropped and counted rather than blocking a request. Columns follow ``registry.logschema``.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from registry.logschema import (
    FEEDBACK,
    FEEDBACK_COLUMNS,
    PREDICTION_LEADING,
    PREDICTION_TRAILING,
    PREDICTIONS,
    SEGMENT_CODECS,
    SEGMENT_COMPRESSION,
    feature_column,
    proba_column,
    segment_dir,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.schema import InputSpec, OutputSpec

log = logging.getLogger(__name__)

_US_PER_DAY = 86_400_000_000


def default_worker_id() -> str:
    """``<host>-<pid>-<random>``: unique per process, also across restarts with a reused pid."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class LogLayout:
    """The log columns of one loaded version: feature columns and their types, classes."""

    def __init__(self, inputs: InputSpec, outputs: OutputSpec) -> None:
        self.feature_columns = [feature_column(n) for n in inputs.names]
        self.labels = {j: codec.labels for j, codec in inputs.categorical.items()}
        self.classification = outputs.task == "classification"
        classes: list[Any] = [] if outputs.classes is None else list(outputs.classes)
        # one proba column per class, only for a classifier that gives probabilities
        has_proba = "predict_proba" in outputs.names
        self.proba_columns = [proba_column(c) for c in classes] if has_proba else []


class PredictionRecord:
    """One request's rows as the gateway saw them (a failed request is one row of nulls)."""

    __slots__ = (
        "X",
        "batch_rows",
        "latency_us",
        "layout",
        "model",
        "outputs",
        "request_id",
        "route",
        "rows",
        "status",
        "ts_us",
        "version",
    )

    def __init__(
        self,
        *,
        ts_us: int,
        request_id: str,
        model: str,
        version: int,
        route: str,
        layout: LogLayout,
        X: np.ndarray | None,
        outputs: dict[str, np.ndarray] | None,
        latency_us: int,
        batch_rows: int,
        status: int,
    ) -> None:
        self.ts_us = ts_us
        self.request_id = request_id
        self.model = model
        self.version = version
        self.route = route
        self.layout = layout
        self.X = X if outputs is not None else None
        self.outputs = outputs
        self.rows = X.shape[0] if (X is not None and outputs is not None) else 1
        self.latency_us = latency_us
        self.batch_rows = batch_rows
        self.status = status


class FeedbackRecord:
    __slots__ = ("label", "model", "request_id", "ts_us")

    def __init__(self, *, ts_us: int, request_id: str, model: str, label: Any) -> None:
        self.ts_us = ts_us
        self.request_id = request_id
        self.model = model
        self.label = label


Record = PredictionRecord | FeedbackRecord


class LogWriter:
    """Buffers records and writes Parquet segments from its own thread.

    ``logs_url``: a local path, ``file://`` URL or any fsspec URL (``s3://bucket/prefix``).
    """

    def __init__(
        self,
        logs_url: str,
        *,
        worker_id: str | None = None,
        flush_rows: int = 50_000,
        flush_interval_s: float = 5.0,
        buffer_rows: int = 500_000,
        compression: str = SEGMENT_COMPRESSION,
        storage_options: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logs_url = logs_url
        self.worker_id = worker_id or default_worker_id()
        self.flush_rows = flush_rows
        self.flush_interval_s = flush_interval_s
        self.buffer_rows = buffer_rows
        if compression not in SEGMENT_CODECS:
            raise ValueError(f"compression: expected one of {SEGMENT_CODECS}, got {compression!r}")
        self.compression = compression
        self.storage_options = storage_options or {}
        self.clock = clock
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._records: list[Record] = []
        self._buffered_rows = 0
        self._seq = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self.rows_written = {PREDICTIONS: 0, FEEDBACK: 0}
        self.rows_dropped = {PREDICTIONS: 0, FEEDBACK: 0}
        self.segments_written = 0
        self.write_errors = 0
        self._local_root, self._fs = _resolve(self.logs_url, self.storage_options)

    # -- serving side -------------------------------------------------------------------------
    def append(self, record: Record) -> bool:
        """Buffer a record; ``False`` (and counted) when the buffer is full or closed."""
        rows = record.rows if isinstance(record, PredictionRecord) else 1
        with self._lock:
            if self._closed or self._buffered_rows + rows > self.buffer_rows:
                self.rows_dropped[_kind(record)] += rows
                return False
            self._records.append(record)
            self._buffered_rows += rows
            if self._buffered_rows >= self.flush_rows:
                self._wake.notify()
        return True

    @property
    def buffered_rows(self) -> int:
        return self._buffered_rows

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mlgate-logwriter", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop taking records, write everything buffered, stop the thread."""
        with self._lock:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.flush()

    def flush(self) -> int:
        """Write every buffered record now (from any thread). Returns rows written."""
        with self._lock:
            records, self._records = self._records, []
            self._buffered_rows = 0
        if not records:
            return 0
        return self._write(records)

    def _run(self) -> None:
        last = self.clock()
        while True:
            with self._lock:
                if not self._closed and self._buffered_rows < self.flush_rows:
                    left = self.flush_interval_s - (self.clock() - last)
                    if left > 0:
                        self._wake.wait(left)
                closed = self._closed
                due = self._buffered_rows >= self.flush_rows or (
                    self.clock() - last >= self.flush_interval_s
                )
            if due or closed:
                try:
                    self.flush()
                except Exception:  # noqa: BLE001 - the writer thread must survive anything
                    log.exception("log writer: flush failed")
                last = self.clock()
            if closed:
                return

    # -- writing ------------------------------------------------------------------------------
    def _write(self, records: list[Record]) -> int:
        groups: dict[tuple[str, str, str], list[Record]] = defaultdict(list)
        days: dict[int, str] = {}  # UTC day number -> "YYYY-MM-DD" (strftime per row was
        for record in records:  # half of the writer's time, with the GIL held)
            number = record.ts_us // _US_PER_DAY
            day = days.get(number)
            if day is None:
                day = days[number] = datetime.fromtimestamp(
                    number * (_US_PER_DAY // 1_000_000), tz=UTC
                ).strftime("%Y-%m-%d")
            groups[(_kind(record), record.model, day)].append(record)
        written = 0
        for (kind, model, day), group in groups.items():
            rows = sum(r.rows if isinstance(r, PredictionRecord) else 1 for r in group)
            try:
                if kind == PREDICTIONS:
                    frame = predictions_frame([r for r in group if isinstance(r, PredictionRecord)])
                else:
                    frame = feedback_frame([r for r in group if isinstance(r, FeedbackRecord)])
                self._write_segment(frame, kind, model, day)
            except Exception:  # noqa: BLE001 - count, log and keep serving
                log.exception("log writer: could not write %d %s rows of %s", rows, kind, model)
                self.write_errors += 1
                self.rows_dropped[kind] += rows
                continue
            self.rows_written[kind] += rows
            written += rows
        return written

    def _write_segment(self, frame: pl.DataFrame, kind: str, model: str, day: str) -> None:
        self._seq += 1
        name = f"{self.worker_id}-{self._seq:06d}.parquet"
        if self._local_root is not None:
            directory = segment_dir(self._local_root, kind, model, day)
            os.makedirs(directory, exist_ok=True)
            final = os.path.join(directory, name)
            temp = os.path.join(directory, f".{name}.tmp")
            frame.write_parquet(temp, compression=self.compression)  # type: ignore[arg-type]
            os.replace(temp, final)
        else:
            assert self._fs is not None
            directory = segment_dir(self.logs_url, kind, model, day)
            buffer = io.BytesIO()
            frame.write_parquet(buffer, compression=self.compression)  # type: ignore[arg-type]
            # one PUT: object stores make it visible all at once
            self._fs.pipe_file(f"{directory}/{name}", buffer.getvalue())
        self.segments_written += 1


def _kind(record: Record) -> str:
    return PREDICTIONS if isinstance(record, PredictionRecord) else FEEDBACK


def _resolve(url: str, storage_options: dict[str, Any]) -> tuple[str | None, Any]:
    if url.startswith("file://"):
        return url[len("file://") :], None
    if "://" not in url:
        return os.path.abspath(url), None
    import fsspec

    fs, _ = fsspec.core.url_to_fs(url, **storage_options)
    return None, fs


def _ts_series(ts_us: np.ndarray) -> pl.Series:
    return pl.Series("ts", ts_us, dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))


def predictions_frame(records: list[PredictionRecord]) -> pl.DataFrame:
    """Columns of ``registry.logschema`` for records (any mix of versions and layouts)."""
    by_layout: dict[int, list[PredictionRecord]] = defaultdict(list)
    for record in records:
        by_layout[id(record.layout)].append(record)
    frames = [_layout_frame(group) for group in by_layout.values()]
    if len(frames) == 1:
        return frames[0]
    return pl.concat(frames, how="diagonal_relaxed")


def _layout_frame(records: list[PredictionRecord]) -> pl.DataFrame:
    """Columns for records of one layout; vectorized so the writer holds the GIL briefly."""
    layout = records[0].layout
    served = [r for r in records if r.outputs is not None]
    failed = [r for r in records if r.outputs is None]
    frames = []
    if served:
        frames.append(_served_frame(layout, served))
    if failed:
        frames.append(_common_columns(failed, np.ones(len(failed), dtype=np.int64)))
    frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
    order = [
        *PREDICTION_LEADING,
        *layout.feature_columns,
        "prediction",
        *layout.proba_columns,
        *PREDICTION_TRAILING,
    ]
    missing = [c for c in order if c not in frame.columns]
    if missing:  # only failed rows: features and outputs are all null
        pred_type = pl.String if layout.classification else pl.Float64
        frame = frame.with_columns(
            pl.lit(None, dtype=_null_type(c, layout, pred_type)).alias(c) for c in missing
        )
    return frame.select(order)


def _null_type(column: str, layout: LogLayout, pred_type: Any) -> Any:
    if column == "prediction":
        return pred_type
    if column in layout.feature_columns and layout.feature_columns.index(column) in layout.labels:
        return pl.String
    return pl.Float64


def _row_ids(records: list[PredictionRecord], counts: np.ndarray, single: bool) -> pl.Series:
    """Row ``i`` of an ``n``-row request (``n > 1``) is logged as ``<request id>/<i>``, so
    ground truth can be sent per row and joins on ``request_id`` stay one-to-one."""
    if single:
        return pl.Series([r.request_id for r in records], dtype=pl.String)
    ids: list[str] = []
    for r, n in zip(records, counts.tolist(), strict=True):
        if n == 1:
            ids.append(r.request_id)
        else:
            ids.extend(f"{r.request_id}/{i}" for i in range(n))
    return pl.Series(ids, dtype=pl.String)


def _common_columns(records: list[PredictionRecord], counts: np.ndarray) -> pl.DataFrame:
    single = bool((counts == 1).all())

    def column(values: list[Any], dtype: Any) -> Any:
        if single:
            return pl.Series(values, dtype=dtype)
        return pl.Series(np.repeat(np.array(values, dtype=object), counts).tolist(), dtype=dtype)

    def numbers(values: list[int]) -> np.ndarray:
        arr = np.array(values, dtype=np.int64)
        return arr if single else np.repeat(arr, counts)

    return pl.DataFrame(
        {
            "ts": _ts_series(numbers([r.ts_us for r in records])),
            "request_id": _row_ids(records, counts, single),
            "model": column([r.model for r in records], pl.String),
            "version": numbers([r.version for r in records]),
            "route": column([r.route for r in records], pl.String),
            "latency_us": numbers([r.latency_us for r in records]),
            "batch_rows": numbers([r.batch_rows for r in records]),
            "status": numbers([r.status for r in records]),
        }
    )


def _served_frame(layout: LogLayout, records: list[PredictionRecord]) -> pl.DataFrame:
    counts = np.array([r.rows for r in records], dtype=np.int64)
    frame = _common_columns(records, counts)
    X = np.concatenate([r.X for r in records if r.X is not None]).astype(np.float64)
    columns: list[pl.Series] = []
    for j, name in enumerate(layout.feature_columns):
        labels = layout.labels.get(j)
        if labels is None:
            columns.append(pl.Series(name, X[:, j], dtype=pl.Float64).fill_nan(None))
        else:
            values = [labels.get(v) if v == v else None for v in X[:, j].tolist()]
            columns.append(pl.Series(name, values, dtype=pl.String))
    outputs = [r.outputs for r in records if r.outputs is not None]
    predict = np.concatenate([o["predict"] for o in outputs])
    if not layout.classification:
        columns.append(pl.Series("prediction", predict.astype(np.float64), dtype=pl.Float64))
    elif predict.dtype.kind in "iu":
        columns.append(pl.Series("prediction", predict).cast(pl.String))
    else:
        columns.append(pl.Series("prediction", [str(v) for v in predict.tolist()], pl.String))
    if layout.proba_columns:
        proba = np.concatenate([o["predict_proba"] for o in outputs]).astype(np.float64)
        for j, name in enumerate(layout.proba_columns):
            columns.append(pl.Series(name, proba[:, j], dtype=pl.Float64))
    return frame.with_columns(columns)


def feedback_frame(records: list[FeedbackRecord]) -> pl.DataFrame:
    labels = [str(r.label) for r in records]
    return pl.DataFrame(
        {
            "ts": _ts_series(np.array([r.ts_us for r in records], dtype=np.int64)),
            "request_id": pl.Series([r.request_id for r in records], dtype=pl.String),
            "model": pl.Series([r.model for r in records], dtype=pl.String),
            "label": pl.Series(labels, dtype=pl.String),
            "label_value": pl.Series([_number(r.label) for r in records], dtype=pl.Float64),
        }
    ).select(FEEDBACK_COLUMNS)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
