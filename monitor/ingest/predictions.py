"""Reading one prediction segment into window bin counts, exactly once.

A segment is read with pyarrow in record batches (bounded memory, see ``monitor.ingest.segment``),
counted into the frozen bins of each version's profile, and committed in one transaction
together with its row in ``segments``: a crash before the commit leaves no trace, and a
committed segment is never read again.

The prediction rows kept for the feedback join (request-id hash, window, prediction and
probabilities) are inserted by DuckDB itself, in the same transaction, straight from the
segment file: Python only tells it each row's window, as arithmetic on the row number for
the usual segment (one stream in row windows), else as an array of 8 bytes a row. Building
them in Python cost ~0.25 s and ~90 MiB a million rows; DuckDB's scan, hash and insert are
cheaper and stay within its memory limit. (Inserting each counted batch from Arrow on a
writer thread, overlapped with the counting, was measured slower: DuckDB's scan of a Python
Arrow table takes ~0.28 s a million rows and competes with the counting for the GIL.)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import duckdb
import numpy as np

from monitor.detectors.adwin import ADWIN
from monitor.detectors.streams import ConfidenceMonitor, confidence_monitor
from monitor.ingest.memory import MemoryReleaser, prefer_jemalloc
from monitor.ingest.references import (
    PREDICTION,
    ROLE_PREDICTION,
    ROLE_SCORE,
    SCORE,
    VersionContext,
    confidence,
)
from monitor.ingest.segment import (
    Group,
    Problem,
    SegmentError,
    SegmentFile,
    as_float,
    category_codes,
    epoch_us,
    group_mask,
    mistyped,
    request_hash_sql,
    sql_list,
)
from monitor.ingest.windows import WindowCutter, WindowPart
from monitor.stats.binning import BinCounts, NumericBinner
from monitor.stats.profile import CATEGORICAL, ColumnProfile
from monitor.store.rows import SegmentRow
from registry import logschema

if TYPE_CHECKING:
    from collections.abc import Callable, Container, Generator, Iterator

    import pyarrow as pa

    from monitor.config import MonitorConfig
    from monitor.ingest.logstore import Segment
    from monitor.store import MonitorStore

REQUIRED = ("ts", "request_id", "version", "route")

__all__ = ["PredictionIngestor", "SegmentError"]


@dataclass
class _Stream:
    """One (version, route) of the segment being read, with its window state."""

    group: Group
    ctx: VersionContext
    cutter: WindowCutter
    detector: ConfidenceMonitor
    stash: list[_Stashed] = field(default_factory=list)
    # (window id, rows) of this segment's rows in order, consecutive ids merged
    runs: list[list[int]] = field(default_factory=list)


# prediction and score values counted once the predictions' profile exists
_Stashed = tuple[WindowPart, dict[str, "np.ndarray | None"], "slice | np.ndarray"]


class _Planned(NamedTuple):
    """One stream's rows of one batch, as the first read of a segment found them."""

    mask: pa.Array | None  # the stream's rows of the batch; None: all of them
    pieces: list[tuple[WindowPart, slice | np.ndarray]]  # each window's rows of those


@dataclass
class _Chunk:
    """The columns of one batch of one stream, converted for counting."""

    rows: int
    ts: np.ndarray
    values: dict[str, np.ndarray]  # profile column name -> float64 (codes for categorical)
    pred: np.ndarray | None
    proba: np.ndarray | None


_TRANSIENT = (duckdb.OutOfMemoryException, duckdb.InterruptException)


class StoreFailed(RuntimeError):
    """A segment counted whole could not be committed to the monitor's store (retried)."""


class PredictionIngestor:
    """Counts prediction segments into windows for the versions it is given."""

    def __init__(self, store: MonitorStore, config: MonitorConfig) -> None:
        self.store = store
        self.config = config
        # the binning kernel releases the GIL: columns are counted on two threads, and the
        # next batch is decoded on a third while this one is counted
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlgate-bins")
        self.reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlgate-read")
        self._duck: duckdb.DuckDBPyConnection | None = None
        prefer_jemalloc()
        self._memory = MemoryReleaser()
        self._preloaded = self.pool.submit(warm_kernels)  # numba's set-up, off the first batch

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.reader.shutdown(wait=True)
        if self._duck is not None:
            self._duck.close()
            self._duck = None

    def _scratch(self) -> duckdb.DuckDBPyConnection:
        """A private single-threaded in-memory DuckDB for per-batch expressions (request-id
        hash, casts): on the store's connection each tiny query woke its thread pool."""
        if self._duck is None:
            self._duck = duckdb.connect(config={"threads": 1})
        return self._duck

    def ingest(
        self,
        segment: Segment,
        local_path: str,
        contexts: Callable[[int], VersionContext | None],
        *,
        now: float,
    ) -> tuple[int, list[Problem]]:
        """Count one segment; returns (rows counted, problems found). Commits itself."""
        source = SegmentFile(local_path, display=segment.path)
        cur = self._scratch().cursor()
        try:
            missing = [c for c in REQUIRED if c not in source.types]
            if missing:
                raise SegmentError(
                    "foreign_segment",
                    f"{segment.path}: not a prediction segment: missing columns {missing};"
                    f" expected {list(logschema.PREDICTION_LEADING)} first,"
                    f" got {list(source.types)[:8]}",
                )
            return self._ingest_groups(cur, segment, source, contexts, now)
        except _TRANSIENT:
            raise  # the segment is retried on the next pass
        except duckdb.Error as exc:
            raise SegmentError("corrupt_segment", f"{segment.path}: read failed: {exc}") from exc
        finally:
            cur.close()
            source.close()
            self._memory.release()  # the next segment starts from what is really in use

    def _streams(
        self,
        segment: Segment,
        source: SegmentFile,
        contexts: Callable[[int], VersionContext | None],
        problems: list[Problem],
    ) -> list[_Stream]:
        model = segment.model or ""
        streams: list[_Stream] = []
        for group in source.groups():
            n = group.rows
            if group.version is None or group.route is None:
                what = "a version" if group.version is None else "a route"
                problems.append(
                    Problem("rows_skipped", f"{segment.path}: {n} rows without {what} were skipped")
                )
                continue
            version = int(group.version)
            ctx = contexts(version)
            if ctx is None:
                problems.append(
                    Problem(
                        "rows_skipped",
                        f"{segment.path}: version {version} of model {model} is not in the"
                        f" registry; {n} rows skipped",
                    )
                )
                continue
            absent = [
                logschema.feature_column(f)
                for f in ctx.feature_names
                if logschema.feature_column(f) not in source.types
            ]
            if absent:
                problems.append(
                    Problem(
                        "rows_skipped",
                        f"{segment.path}: columns do not match model {model} version {version}:"
                        f" missing {absent}; {n} rows skipped",
                    )
                )
                continue
            wrong = mistyped(source.types, _numeric_columns(ctx))
            if wrong:
                problems.append(
                    Problem(
                        "wrong_column_type",
                        f"{segment.path}: model {model} version {version}: "
                        + "; ".join(wrong)
                        + f"; {n} rows read, values that are not numbers count as nulls",
                    )
                )
            route = str(group.route)
            streams.append(
                _Stream(
                    group=group,
                    ctx=ctx,
                    cutter=WindowCutter(self.store, self.config, model, version, route),
                    detector=confidence_monitor(
                        (model, version, route),
                        self.store.detector_state((model, version, route), ConfidenceMonitor.NAME),
                        batch_rows=self.config.detector_batch_rows,
                        delta=self.config.adwin_delta,
                    ),
                )
            )
        return streams

    def _ingest_groups(
        self,
        cur: duckdb.DuckDBPyConnection,
        segment: Segment,
        source: SegmentFile,
        contexts: Callable[[int], VersionContext | None],
        now: float,
    ) -> tuple[int, list[Problem]]:
        problems: list[Problem] = []
        streams = self._streams(segment, source, contexts, problems)
        # the window of each file row (-1: not counted), for the prediction rows; not needed
        # for a segment that is one stream in row windows (its runs say each row's window)
        # one stream holding every row of the segment: no filtering at all, and the
        # version, route and status columns need not be read
        whole = len(streams) == 1 and streams[0].group.rows == source.rows
        by_runs = whole and self.config.window_s is None
        row_windows = (
            np.full(source.rows, -1, dtype=np.int64)
            if streams and not by_runs and self.config.keep_prediction_rows
            else None
        )
        total = 0
        if streams:
            total = self._count_segment(cur, segment, source, streams, whole, row_windows)
            for s in streams:
                s.cutter.close_time_windows()
                self._count_stashed(s, now)
        self._commit(segment, source, streams, row_windows, total, problems, now)
        return total, problems

    def _count_segment(
        self,
        cur: duckdb.DuckDBPyConnection,
        segment: Segment,
        source: SegmentFile,
        streams: list[_Stream],
        whole: bool,
        row_windows: np.ndarray | None,
    ) -> int:
        """Count the segment's rows, reading its columns a group at a time.

        Arrow holds ~3 MiB of page and decode buffers per column being read, whatever the
        batch size: all 36 columns of a usual segment at once took ~105 MiB, a fifth of the
        pass's peak (``read_columns`` = 12 reads 32 features in three passes at the same
        CPU time, ~35 MiB). The first read cuts the rows into windows (time, predictions, scores,
        the detector, and the first features); each later read counts more features into
        the windows the first one chose, batch by batch (batch boundaries depend only on
        the batch size, not on the columns read).
        """
        lead = {"ts"} if whole else {"ts", "version", "route", *source.filter_columns()}
        features: set[str] = set()
        for s in streams:
            lead |= self._lead_sources(s.ctx, source)
            features |= self._feature_sources(s.ctx, source)
        groups = column_groups(list(source.types), lead, features, self.config.read_columns)
        plans: list[list[_Planned]] = []
        total = 0
        offset = 0  # file row of the batch's first row
        for batch in self._read(source, groups[0]):
            ok = None if whole else source.ok_mask(batch)
            planned: list[_Planned] = []
            for s in streams:
                mask = None if whole else group_mask(batch, s.group, ok)
                part = batch if mask is None else batch.filter(mask)
                planned.append(_Planned(mask, []))
                if part.num_rows == 0:
                    continue
                total += part.num_rows
                chunk = self._chunk(cur, s.ctx, part, segment.path, known=source.types)
                windows = self._count_batch(s, chunk, planned[-1].pieces)
                if row_windows is not None:
                    rows: slice | np.ndarray = slice(offset, offset + batch.num_rows)
                    if mask is not None:
                        rows = offset + np.flatnonzero(mask.to_numpy(zero_copy_only=False))
                    row_windows[rows] = windows
            plans.append(planned)
            offset += batch.num_rows
        for columns in groups[1:]:
            self._count_more(cur, segment, source, streams, columns, plans)
        return total

    def _count_more(
        self,
        cur: duckdb.DuckDBPyConnection,
        segment: Segment,
        source: SegmentFile,
        streams: list[_Stream],
        columns: list[str],
        plans: list[list[_Planned]],
    ) -> None:
        """Count the features in ``columns`` into the windows the first read chose."""
        batches = 0
        for batch, planned in zip(self._read(source, columns), plans, strict=False):
            batches += 1
            for s, plan in zip(streams, planned, strict=True):
                if not plan.pieces:
                    continue
                part = batch if plan.mask is None else batch.filter(plan.mask)
                values = self._values(cur, s.ctx, part, known=None)
                cols = {c.name: c for c in s.ctx.columns()}
                jobs = [
                    (s.ctx, cols[n], x[sel], window)
                    for window, sel in plan.pieces
                    for n, x in values.items()
                ]
                list(self.pool.map(lambda job: self._count(*job), jobs))
        if batches != len(plans):
            raise SegmentError(
                "corrupt_segment",
                f"{segment.path}: columns {columns[:3]}... read as {batches} batches,"
                f" the first columns as {len(plans)}",
            )

    def _read(self, source: SegmentFile, columns: list[str]) -> Iterator[pa.RecordBatch]:
        batches = self._prefetch(source.batches(columns))
        try:
            yield from batches
        finally:
            batches.close()  # no read left running on a file about to be closed

    def _prefetch(self, batches: Iterator[pa.RecordBatch]) -> Generator[pa.RecordBatch]:
        """Decode the next batch on the reader thread while the caller counts this one."""
        pending = self.reader.submit(next, batches, None)
        try:
            while True:
                batch = pending.result()
                if batch is None:
                    return
                pending = self.reader.submit(next, batches, None)
                yield batch
        finally:
            wait([pending])

    def _lead_sources(self, ctx: VersionContext, source: SegmentFile) -> set[str]:
        """The prediction and score columns (read with the rows' times)."""
        out = {"prediction"}
        if ctx.task == "classification":
            out.update(ctx.proba_columns())
        return {c for c in out if c in source.types}

    def _feature_sources(self, ctx: VersionContext, source: SegmentFile) -> set[str]:
        out = {logschema.feature_column(c.name) for c in ctx.columns() if c.role not in
               (ROLE_SCORE, ROLE_PREDICTION)}  # fmt: skip
        return {c for c in out if c in source.types}

    @staticmethod
    def _values(
        cur: duckdb.DuckDBPyConnection,
        ctx: VersionContext,
        batch: pa.RecordBatch,
        *,
        known: Container[str] | None,
    ) -> dict[str, np.ndarray]:
        """Profile column name -> float64 (codes for categorical) of the features in
        ``batch``, and NaN for those not among the segment's columns ``known`` (given on
        the first read only, so that they are counted once)."""
        present = set(batch.schema.names)
        values: dict[str, np.ndarray] = {}
        for col in ctx.columns():
            if col.role in (ROLE_SCORE, ROLE_PREDICTION):
                continue
            name = logschema.feature_column(col.name)
            if name in present:
                if col.kind == CATEGORICAL:
                    values[col.name] = category_codes(batch.column(name), col.categories, cur)
                else:
                    values[col.name] = as_float(batch.column(name), cur)
            elif known is not None and name not in known:
                values[col.name] = np.full(batch.num_rows, np.nan)
        return values

    def _chunk(
        self,
        cur: duckdb.DuckDBPyConnection,
        ctx: VersionContext,
        batch: pa.RecordBatch,
        path: str,
        *,
        known: Container[str],
    ) -> _Chunk:
        present = set(batch.schema.names)
        pred = None
        if "prediction" in present:
            column = batch.column("prediction")
            if ctx.task == "classification":
                pred = category_codes(column, ctx.classes, cur)
            else:
                pred = as_float(column, cur)
        proba = None
        probas = ctx.proba_columns() if ctx.task == "classification" else []
        if probas and all(c in present for c in probas):
            proba = np.column_stack([as_float(batch.column(c), cur) for c in probas])
        return _Chunk(
            rows=batch.num_rows,
            ts=epoch_us(batch.column("ts"), display=path),
            values=self._values(cur, ctx, batch, known=known),
            pred=pred,
            proba=proba,
        )

    def _count_batch(
        self, stream: _Stream, chunk: _Chunk, pieces: list[tuple[WindowPart, slice | np.ndarray]]
    ) -> np.ndarray:
        """Count one chunk into its windows; returns the window id of each of its rows, and
        adds each window's rows of the chunk to ``pieces``."""
        ctx, cutter, detector, stash = stream.ctx, stream.cutter, stream.detector, stream.stash
        arrays = dict(chunk.values)
        pred, proba, ts = chunk.pred, chunk.proba, chunk.ts
        score = confidence(proba) if proba is not None else None
        if ctx.task != "classification":
            score = pred
        cols = {c.name: c for c in ctx.columns()}
        waiting = ctx.pending is not None  # predictions' profile still being built
        if PREDICTION in cols and pred is not None:
            arrays[PREDICTION] = pred
        if SCORE in cols and score is not None:
            arrays[SCORE] = score
        if self.config.window_s is None:
            split = [(p, np.arange(a, b)) for p, a, b in cutter.split_rows(chunk.rows)]
        else:
            split = cutter.split_time(ts)
        window_ids = np.empty(chunk.rows, dtype=np.int64)
        for part, idx in split:
            contiguous = len(idx) > 0 and idx[-1] - idx[0] + 1 == len(idx)
            sel: slice | np.ndarray = slice(int(idx[0]), int(idx[-1]) + 1) if contiguous else idx
            pieces.append((part, sel))
            window_ids[sel] = part.window_id
            if stream.runs and stream.runs[-1][0] == part.window_id:
                stream.runs[-1][1] += len(idx)
            else:
                stream.runs.append([part.window_id, len(idx)])
            part.span(ts[sel])
            jobs = [(cols[n], x[sel], part) for n, x in arrays.items()]
            list(self.pool.map(lambda job: self._count(ctx, *job), jobs))
            if waiting:
                stash.append((part, {PREDICTION: pred, SCORE: score}, sel))
            if score is not None:
                fired = detector.update(score[sel])
                if fired:
                    part.flags["adwin"] = part.flags.get("adwin", 0) + fired
        return window_ids

    def _count_stashed(self, stream: _Stream, now: float) -> None:
        """Count the predictions held back while their profile was being built."""
        if not stream.stash:
            return
        stream.ctx.settle(self.store, now=now)
        cols = {c.name: c for c in stream.ctx.columns()}
        for part, values, sel in stream.stash:
            for name, x in values.items():
                if name in cols and x is not None:
                    self._count(stream.ctx, cols[name], x[sel], part)
        stream.stash.clear()

    @staticmethod
    def _count(ctx: VersionContext, col: ColumnProfile, x: np.ndarray, part: WindowPart) -> None:
        acc = part.counts.get(col.name)
        if acc is None:
            acc = part.counts.setdefault(col.name, BinCounts(col.n_bins))
        if col.kind == CATEGORICAL:
            codes = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=-1.0).astype(np.int64)
            valid = codes[codes >= 0]
            acc.counts += np.bincount(valid, minlength=col.n_bins)[: col.n_bins]
            acc.nulls += int(len(codes) - len(valid))
        else:
            ctx.binner(col).count(x, acc)

    def _commit(
        self,
        segment: Segment,
        source: SegmentFile,
        streams: list[_Stream],
        row_windows: np.ndarray | None,
        total: int,
        problems: list[Problem],
        now: float,
    ) -> None:
        try:
            self._store_segment(segment, source, streams, row_windows, total, problems, now)
        except BaseException as exc:
            self.store.reset_insertion_order()
            if isinstance(exc, duckdb.Error) and not isinstance(exc, _TRANSIENT):
                # the segment was read whole: a failure to store it (a full disk, say) is
                # not the segment's fault, and it is read again on the next pass
                raise StoreFailed(
                    f"{segment.path}: not stored ({exc}); read again next pass"
                ) from exc
            raise

    def _store_segment(
        self,
        segment: Segment,
        source: SegmentFile,
        streams: list[_Stream],
        row_windows: np.ndarray | None,
        total: int,
        problems: list[Problem],
        now: float,
    ) -> None:
        """Windows, counts, detector state, prediction rows and the segment's own row: one
        transaction."""
        with self.store.transaction():
            for s in streams:
                s.cutter.write({c.name: c for c in s.ctx.columns()})
                self.store.save_detector_state(s.detector.key, s.detector.NAME, s.detector.state())
            if self.config.keep_prediction_rows and total:
                self._insert_prediction_rows(source, streams, row_windows)
            self.store.record_segment(
                SegmentRow(
                    segment.key,
                    segment.kind,
                    segment.model,
                    segment.size,
                    segment.mtime_ns,
                    total,
                    "problem" if problems else "ok",
                    "; ".join(p.detail for p in problems) or None,
                    now,
                    segment.fingerprint,
                )
            )

    def _insert_prediction_rows(
        self, source: SegmentFile, streams: list[_Stream], row_windows: np.ndarray | None
    ) -> None:
        """``prediction_rows`` of the segment, by DuckDB from the file.

        A segment that is one stream in row windows (``row_windows`` None, the usual case):
        each row's window is arithmetic on its row number, and the scan runs on DuckDB's
        threads. Otherwise the i-th row read is paired with ``row_windows[i]`` (POSITIONAL
        JOIN, one thread), and rows of no window are left out.
        """
        present = set(source.types)
        path = sql_list([source.path])

        def values(ctx: VersionContext) -> str:
            return (
                f"{request_hash_sql('p.request_id')}, {_prediction_sql(ctx, present)},"
                f" {_probas_sql(ctx, present)}"
            )

        if row_windows is None:  # one stream in row windows: its runs are in row order
            (stream,) = streams
            window = runs_formula(stream.runs)
            if window is not None:
                self.store.add_prediction_rows(window, values(stream.ctx), path)
                return
            ids, counts = np.array(stream.runs, dtype=np.int64).reshape(-1, 2).T
            row_windows = np.repeat(ids, counts)
        by_version: dict[int, tuple[VersionContext, set[int]]] = {}
        for s in streams:
            ctx, ids_of = by_version.setdefault(id(s.ctx), (s.ctx, set()))
            ids_of.update(wid for wid, _ in s.runs)
        parts = []
        for ctx, ids_of in by_version.values():
            where = "w.window_id >= 0"
            if len(by_version) > 1:  # the rows of this version only
                where = f"list_contains({sorted(ids_of)}, w.window_id)"
            parts.append((values(ctx), where))
        self.store.add_prediction_rows_paired(row_windows, parts, path)


def column_groups(
    order: list[str], lead: set[str], features: set[str], per_read: int
) -> list[list[str]]:
    """The columns of each read of a segment, in the file's ``order``: the ``lead`` ones
    and the first features, then the other ``features``, at most ``per_read`` a read
    (the lead ones are never split).

    >>> column_groups(["ts", "a", "b", "c", "p"], {"ts", "p"}, {"a", "b", "c"}, 3)
    [['ts', 'a', 'p'], ['b', 'c']]
    """
    first = [c for c in order if c in lead]
    rest = [c for c in order if c in features and c not in lead]
    room = max(per_read - len(first), 0)
    head, rest = set(rest[:room]), rest[room:]
    groups = [[c for c in order if c in lead or c in head]]
    groups += [rest[i : i + per_read] for i in range(0, len(rest), per_read)]
    return groups


def runs_formula(runs: list[list[int]]) -> str | None:
    """The window of each row as SQL over ``file_row_number``, for runs ``[id, rows]`` that
    have the shape of one stream cut into row windows: a first window of ``a`` rows, then
    windows of ``w`` rows with consecutive ids, the last one possibly shorter (a gateway
    worker's usual segment). None for any other shape.

    >>> runs_formula([[7, 2], [8, 3], [9, 1]])
    '(CASE WHEN file_row_number < 2 THEN 7 ELSE 8 + (file_row_number - 2) // 3 END)'
    >>> runs_formula([[7, 1], [9, 1], [8, 1]]) is None
    True
    """
    if not runs or any(wid < 0 or n <= 0 for wid, n in runs):
        return None
    first, a = runs[0]
    if len(runs) == 1:
        return f"{first}::BIGINT"
    start, w = runs[1]
    rest = runs[1:]
    for i, (wid, n) in enumerate(rest):
        last = i == len(rest) - 1
        if wid != start + i or (n > w if last else n != w):
            return None
    after = f"{start} + (file_row_number - {a}) // {w}"
    return f"(CASE WHEN file_row_number < {a} THEN {first} ELSE {after} END)"


def _numeric_columns(ctx: VersionContext) -> list[str]:
    """The log columns a version's profile reads as numbers."""
    out = [
        logschema.feature_column(c.name)
        for c in ctx.columns()
        if c.role not in (ROLE_SCORE, ROLE_PREDICTION) and c.kind != CATEGORICAL
    ]
    return out + (ctx.proba_columns() if ctx.task == "classification" else ["prediction"])


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _prediction_sql(ctx: VersionContext, present: set[str]) -> str:
    """The stored prediction: class code as counted (1 + position in the classes, 0 unseen,
    -1 null) for a classifier, the value for a regressor."""
    if "prediction" not in present:
        return "NULL::DOUBLE"
    if ctx.task != "classification":
        return "TRY_CAST(p.prediction AS DOUBLE)"
    classes = f"{sql_list(ctx.classes)}::VARCHAR[]"
    position = f"coalesce(list_position({classes}, p.prediction::VARCHAR), 0)"
    return f"(CASE WHEN p.prediction IS NULL THEN -1 ELSE {position} END)::DOUBLE"


def _probas_sql(ctx: VersionContext, present: set[str]) -> str:
    names = ctx.proba_columns() if ctx.task == "classification" else []
    if not names or any(n not in present for n in names):
        return "NULL::FLOAT[]"
    return "[" + ", ".join(f"TRY_CAST(p.{_ident(n)} AS FLOAT)" for n in names) + "]"


def warm_kernels() -> None:
    """Load (or compile) every kernel a pass calls, with the argument types it calls them
    with: the first use in a process costs ~0.3 s of LLVM set-up even from the cache.

    The ingestor runs this on an idle worker thread when it starts; llvmlite releases the
    GIL, so the set-up overlaps the pass's first steps (listing segments, building
    profiles) instead of stalling its first batch. numba's compiler lock makes a kernel
    called meanwhile wait for it rather than load it twice.
    """
    binner = NumericBinner(np.array([-1.0, 0.0, 1.0]))
    values = np.linspace(-2.0, 2.0, 64)
    binner.count(values, BinCounts(binner.n_bins))
    values.flags.writeable = False  # columns read zero-copy from Arrow are read-only
    binner.count(values, BinCounts(binner.n_bins))
    ADWIN().update_many(np.linspace(0.0, 1.0, 64))
