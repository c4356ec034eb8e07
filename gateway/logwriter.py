"""Background writer of the prediction and feedback log (Parquet segments, polars).

Serving only appends records to a bounded in-memory buffer (a lock and a list append); a
thread turns them into columns and writes one segment per model and UTC day every
``flush_rows`` rows or ``flush_interval_s`` seconds, and on close. Each segment is written
atomically (temp file + rename locally; a single PUT on object stores), named
``<worker>-<gen>.parquet`` (``gen`` counts the flushes) so that workers never share a file.
When the buffer is full, rows are dropped and counted rather than blocking a request. Columns
follow ``registry.logschema``.

With a ``journal_dir``, every append is also written to the worker's crash journal
(``gateway.journal``) before it returns, one write per call (the gateway calls it once per
answered batch, before the answers are released); a flush starts a new journal generation and
deletes the old one once its segments are written, and ``start`` replays what a killed worker
left. A journal write that fails is counted (``journal_errors``) and logged, and the rows are
still buffered: they reach Parquet unless the process also dies.
"""

from __future__ import annotations

import contextlib
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

from gateway import journal
from registry.logschema import (
    FEEDBACK,
    FEEDBACK_COLUMNS,
    PREDICTION_LEADING,
    PREDICTION_TRAILING,
    PREDICTIONS,
    SEGMENT_CODECS,
    SEGMENT_COMPRESSION,
    TRAFFIC_COLUMN,
    feature_column,
    proba_column,
    segment_dir,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from gateway.schema import InputSpec, OutputSpec

log = logging.getLogger(__name__)

_US_PER_DAY = 86_400_000_000
FRAME_PIECE_ROWS = 4096  # rows of a feedback segment turned into columns at a time


def default_worker_id() -> str:
    """``<host>-<pid>-<random>``: unique per process, also across restarts with a reused pid."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class LogLayout:
    """The log columns of one loaded version: feature columns and their types, classes."""

    def __init__(self, inputs: InputSpec, outputs: OutputSpec) -> None:
        classes: list[Any] = [] if outputs.classes is None else list(outputs.classes)
        # one proba column per class, only for a classifier that gives probabilities
        has_proba = "predict_proba" in outputs.names
        self._set(
            feature_columns=[feature_column(n) for n in inputs.names],
            labels={j: codec.labels for j, codec in inputs.categorical.items()},
            classification=outputs.task == "classification",
            proba_columns=[proba_column(c) for c in classes] if has_proba else [],
        )

    def _set(
        self,
        *,
        feature_columns: list[str],
        labels: dict[int, dict[float, str]],
        classification: bool,
        proba_columns: list[str],
    ) -> None:
        self.feature_columns = feature_columns
        self.labels = labels
        self.classification = classification
        self.proba_columns = proba_columns
        self.key = journal.new_layout_key()
        self._frame: bytes | None = None

    @classmethod
    def restore(
        cls,
        *,
        feature_columns: list[str],
        labels: dict[int, dict[float, str]],
        classification: bool,
        proba_columns: list[str],
    ) -> LogLayout:
        """A layout from its journal description (replay)."""
        layout = cls.__new__(cls)
        layout._set(
            feature_columns=feature_columns,
            labels=labels,
            classification=classification,
            proba_columns=proba_columns,
        )
        return layout

    @property
    def journal_frame(self) -> bytes:
        """This layout's description as a journal frame (encoded once)."""
        if self._frame is None:
            self._frame = journal.frame(journal.layout_payload(self))
        return self._frame


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
        "traffic",
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
        traffic: str | None = None,
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
        self.traffic = traffic  # synthetic traffic ("loadtest"); None for real requests


class FeedbackRecord:
    """One label."""

    __slots__ = ("label", "model", "request_id", "ts_us")
    rows = 1

    def __init__(self, *, ts_us: int, request_id: str, model: str, label: Any) -> None:
        self.ts_us = ts_us
        self.request_id = request_id
        self.model = model
        self.label = label

    def columns(self) -> tuple[list[int], list[str], list[str], list[Any]]:
        return [self.ts_us], [self.request_id], [self.model], [self.label]


class FeedbackBatch:
    """Many labels of one model received together, as columns: one object however many
    labels (a million label objects would cost the garbage collector full passes of about
    0.3-1 s, each a stall of every request)."""

    __slots__ = ("labels", "model", "request_ids", "rows", "ts_us")

    def __init__(
        self, *, ts_us: int, model: str, request_ids: list[str], labels: list[Any]
    ) -> None:
        if len(request_ids) != len(labels):
            raise ValueError(f"{len(request_ids)} request ids for {len(labels)} labels")
        self.ts_us = ts_us
        self.model = model
        self.request_ids = request_ids
        self.labels = labels
        self.rows = len(request_ids)

    def columns(self) -> tuple[list[int], list[str], list[str], list[Any]]:
        return [self.ts_us] * self.rows, self.request_ids, [self.model] * self.rows, self.labels


Record = PredictionRecord | FeedbackRecord | FeedbackBatch


class LogWriter:
    """Buffers records and writes Parquet segments from its own thread.

    ``logs_url``: a local path, ``file://`` URL or any fsspec URL (``s3://bucket/prefix``).
    ``journal_dir``: a local directory for the crash journal (``None``: no journal);
    ``journal_fsync``: ``"none"`` (the default: written data survives a crash of the process,
    not of the machine) or ``"always"`` (``fdatasync`` after every write).
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
        journal_dir: str | None = None,
        journal_fsync: str = "none",
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
        if journal_fsync not in journal.FSYNC_POLICIES:
            raise ValueError(
                f"journal_fsync: expected one of {journal.FSYNC_POLICIES}, got {journal_fsync!r}"
            )
        self.journal_dir = journal_dir
        self.journal_fsync = journal_fsync
        self.clock = clock
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._records: list[Record] = []
        self._buffered_rows = 0
        self._gen = 1  # the flush generation being filled (its journal file, its segments)
        self._journal: journal.JournalFile | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self.rows_written = {PREDICTIONS: 0, FEEDBACK: 0}
        self.rows_dropped = {PREDICTIONS: 0, FEEDBACK: 0}
        self.segments_written = 0
        self.write_errors = 0
        # crash journal: failed writes (rows then unprotected), rows replayed at start, torn
        # bytes found at the end of a dead worker's file, files that could not be replayed
        self.journal_errors = 0
        self.rows_unjournaled = 0
        self.rows_replayed = 0
        self.journal_torn_bytes = 0
        self.journal_unreadable = 0
        self._segments = SegmentStore(
            self.logs_url, compression=self.compression, storage_options=self.storage_options
        )

    # -- serving side -------------------------------------------------------------------------
    def append(self, record: Record) -> bool:
        """Buffer (and journal) a record; ``False`` (and counted) when full or closed."""
        return self.append_many((record,))

    def append_many(
        self,
        records: Sequence[Record],
        *,
        batch: tuple[np.ndarray, dict[str, np.ndarray]] | None = None,
    ) -> bool:
        """Buffer records together, journaled in one write before this returns; ``False``
        (and counted) when the buffer cannot take them all.

        ``batch``: the answers of one batch, given as the batch's inputs and outputs (the
        records' rows, concatenated) -- then the records share model, version, layout,
        timestamp and batch size, and the journal frame is built without copying rows."""
        rows = sum(r.rows for r in records)
        frames: Sequence[tuple[LogLayout | None, bytes]] = ()
        if self.journal_dir is not None:
            if batch is not None:
                first = records[0]
                assert isinstance(first, PredictionRecord)
                payload = journal.batch_payload(records, *batch)  # type: ignore[arg-type]
                frames = ((first.layout, journal.frame(payload)),)
            else:
                frames = _journal_frames(records)
        with self._lock:
            if self._closed or self._buffered_rows + rows > self.buffer_rows:
                for r in records:
                    self.rows_dropped[_kind(r)] += r.rows
                return False
            if self._journal is not None:
                self._journal_write(frames, rows)
            elif self.journal_dir is not None:
                self.rows_unjournaled += rows
            self._records.extend(records)
            self._buffered_rows += rows
            if self._buffered_rows >= self.flush_rows:
                self._wake.notify()
        return True

    def _journal_write(self, frames: Sequence[tuple[LogLayout | None, bytes]], rows: int) -> None:
        """Under the lock, so that the journal's order is the buffer's."""
        assert self._journal is not None
        parts = []
        declared = self._journal.declared
        for layout, data in frames:
            if layout is not None and layout.key not in declared:
                parts.append(layout.journal_frame)
                declared.add(layout.key)
            parts.append(data)
        try:
            self._journal.write(b"".join(parts))
        except OSError as exc:
            self.journal_errors += 1
            self.rows_unjournaled += rows
            declared.clear()  # a partial write may have lost a declaration
            if self.journal_errors == 1 or self.journal_errors % 1000 == 0:
                log.error(
                    "log journal %s: write failed (%s); %d rows so far are not protected "
                    "against a crash (mlgate_log_journal_errors_total=%d)",
                    self._journal.path,
                    exc,
                    self.rows_unjournaled,
                    self.journal_errors,
                )

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Replay what dead workers left in the journal directory, then start the thread."""
        if self.journal_dir is not None:
            try:
                os.makedirs(self.journal_dir, exist_ok=True)
            except OSError as exc:
                self._journal_failed("could not create the journal directory", exc)
            else:
                self.replay()
                self._journal = self._open_journal()
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
        with self._lock:
            last, self._journal = self._journal, None
        if last is not None:  # nothing was written to it since the last flush
            last.close(remove=True)

    def flush(self) -> int:
        """Write every buffered record now (from any thread). Returns rows written."""
        with self._lock:
            if not self._records:
                return 0
            records, self._records = self._records, []
            self._buffered_rows = 0
            gen, self._gen = self._gen, self._gen + 1
            done = self._journal
            self._journal = None
            if self.journal_dir is not None and not self._closed:
                self._journal = self._open_journal()
        written, failed = self._write(records, f"{self.worker_id}-{gen:06d}")
        if done is not None:
            # kept when a segment failed: the next start replays it (same segment names)
            done.close(remove=not failed)
        return written

    def replay(self) -> int:
        """Fold the journals of dead workers into segments (named as their own flush would
        have named them, so a segment written just before the crash is not duplicated), then
        remove them. Returns rows replayed."""
        assert self.journal_dir is not None
        total = 0
        for path, worker, gen, fd in journal.orphans(self.journal_dir):
            try:
                frames, torn = journal.read_frames(journal.read_all(fd))
                records = journal.decode_records(frames)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop serving
                self.journal_unreadable += 1
                log.error("log journal %s: unreadable (%r); moved aside to .bad", path, exc)
                with contextlib.suppress(OSError):
                    os.replace(path, path + ".bad")
                continue
            if torn:
                self.journal_torn_bytes += torn
                log.warning("log journal %s: %d torn bytes at its end skipped", path, torn)
            written, failed = self._write(records, f"{worker}-{gen:06d}")
            if failed:
                log.error("log journal %s: kept for the next start (a segment failed)", path)
                continue
            os.unlink(path)
            self.rows_replayed += written
            total += written
            if written:
                log.warning("log journal %s: replayed %d rows of a stopped worker", path, written)
        return total

    def _open_journal(self) -> journal.JournalFile | None:
        assert self.journal_dir is not None
        try:
            return journal.JournalFile(
                self.journal_dir, self.worker_id, self._gen, fsync=self.journal_fsync
            )
        except OSError as exc:
            self._journal_failed("could not open a journal file", exc)
            return None

    def _journal_failed(self, what: str, exc: OSError) -> None:
        self.journal_errors += 1
        log.error(
            "log journal in %s: %s (%s); rows are not protected against a crash until it "
            "works (mlgate_log_journal_errors_total=%d)",
            self.journal_dir,
            what,
            exc,
            self.journal_errors,
        )

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
    def _write(self, records: list[Record], stem: str) -> tuple[int, int]:
        """Write ``records`` as ``<stem>.parquet`` segments (one per kind, model and day).
        Returns (rows written, segments that failed)."""
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
        written = failed = 0
        for (kind, model, day), group in groups.items():
            rows = sum(r.rows for r in group)
            try:
                if kind == PREDICTIONS:
                    frame = predictions_frame([r for r in group if isinstance(r, PredictionRecord)])
                else:
                    labels = [r for r in group if not isinstance(r, PredictionRecord)]
                    frame = feedback_frame(labels)
                self._write_segment(frame, kind, model, day, f"{stem}.parquet")
            except Exception:  # noqa: BLE001 - count, log and keep serving
                log.exception("log writer: could not write %d %s rows of %s", rows, kind, model)
                self.write_errors += 1
                self.rows_dropped[kind] += rows
                failed += 1
                continue
            self.rows_written[kind] += rows
            written += rows
        return written, failed

    def _write_segment(
        self, frame: pl.DataFrame, kind: str, model: str, day: str, name: str
    ) -> None:
        self._segments.write(frame, kind, model, day, name)
        self.segments_written += 1

    def count_written_elsewhere(self, kind: str, rows: int) -> None:
        """Count rows of this worker written as segments by someone else (the feedback
        helper process), so that ``mlgate_log_rows_written_total`` stays whole."""
        self.rows_written[kind] += rows
        self.segments_written += 1


class SegmentStore:
    """Where segments go: a local directory (written to a hidden temporary file, then renamed
    into place, so a reader never sees half a segment) or an fsspec URL (one PUT, which an
    object store makes visible all at once)."""

    def __init__(
        self, logs_url: str, *, compression: str, storage_options: dict[str, Any] | None = None
    ) -> None:
        self.logs_url = logs_url
        self.compression = compression
        self.local_root, self._fs = _resolve(logs_url, storage_options or {})

    def write(self, frame: pl.DataFrame, kind: str, model: str, day: str, name: str) -> None:
        """Write ``frame`` as segment ``name`` of ``model``'s ``kind`` for ``day``."""
        if self.local_root is not None:
            directory = segment_dir(self.local_root, kind, model, day)
            os.makedirs(directory, exist_ok=True)
            final = os.path.join(directory, name)
            temp = os.path.join(directory, f".{name}.tmp")
            frame.write_parquet(temp, compression=self.compression)  # type: ignore[arg-type]
            os.replace(temp, final)
            return
        assert self._fs is not None
        directory = segment_dir(self.logs_url, kind, model, day)
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression=self.compression)  # type: ignore[arg-type]
        self._fs.pipe_file(f"{directory}/{name}", buffer.getvalue())


def _journal_frames(records: Sequence[Record]) -> list[tuple[LogLayout | None, bytes]]:
    """Journal frames of records: one per run of prediction records of one layout, one per
    run of feedback records."""
    frames: list[tuple[LogLayout | None, bytes]] = []
    start = 0
    for i in range(1, len(records) + 1):
        if i < len(records) and _same_run(records[start], records[i]):
            continue
        run = records[start:i]
        first = run[0]
        if isinstance(first, PredictionRecord):
            payload = journal.predictions_payload(run)  # type: ignore[arg-type]
            frames.append((first.layout, journal.frame(payload)))
        else:
            frames.append((None, journal.frame(journal.feedback_payload(run))))
        start = i
    return frames


def _same_run(a: Record, b: Record) -> bool:
    if isinstance(a, PredictionRecord) and isinstance(b, PredictionRecord):
        return a.layout is b.layout
    return not isinstance(a, PredictionRecord) and not isinstance(b, PredictionRecord)


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
    if TRAFFIC_COLUMN in frame.columns:
        order.append(TRAFFIC_COLUMN)
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

    columns = {
            "ts": _ts_series(numbers([r.ts_us for r in records])),
            "request_id": _row_ids(records, counts, single),
            "model": column([r.model for r in records], pl.String),
            "version": numbers([r.version for r in records]),
            "route": column([r.route for r in records], pl.String),
            "latency_us": numbers([r.latency_us for r in records]),
            "batch_rows": numbers([r.batch_rows for r in records]),
            "status": numbers([r.status for r in records]),
    }  # fmt: skip
    if any(r.traffic is not None for r in records):  # the column only where there is some
        columns[TRAFFIC_COLUMN] = column([r.traffic for r in records], pl.String)
    return pl.DataFrame(columns)


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


def feedback_frame(records: Sequence[FeedbackRecord | FeedbackBatch]) -> pl.DataFrame:
    """The feedback segment of ``records``, built FRAME_PIECE_ROWS rows at a time (turning a
    Python list into a column holds the interpreter for the whole list)."""
    ts, ids, models, labels = journal.feedback_columns(records)
    # a label's number, once per distinct label (float("yes") raising for every row of a
    # classifier's labels was most of the writer's time)
    numbers: dict[Any, float | None] = {}
    values = [numbers[v] if v in numbers else numbers.setdefault(v, _number(v)) for v in labels]
    pieces = [
        pl.DataFrame(
            {
                "ts": _ts_series(np.array(ts[start:stop], dtype=np.int64)),
                "request_id": pl.Series(ids[start:stop], dtype=pl.String),
                "model": pl.Series(models[start:stop], dtype=pl.String),
                "label": pl.Series([str(v) for v in labels[start:stop]], dtype=pl.String),
                "label_value": pl.Series(values[start:stop], dtype=pl.Float64),
            }
        ).select(FEEDBACK_COLUMNS)
        for start in range(0, max(len(ids), 1), FRAME_PIECE_ROWS)
        for stop in (start + FRAME_PIECE_ROWS,)
    ]
    return pl.concat(pieces, rechunk=False) if len(pieces) > 1 else pieces[0]


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
