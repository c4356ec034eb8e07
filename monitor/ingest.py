"""Reading one prediction segment into window bin counts, exactly once.

A segment is read with DuckDB in record batches (bounded memory), counted into the frozen
bins of each version's profile, and committed in one transaction together with its row in
``segments``: a crash before the commit leaves no trace, and a committed segment is never
read again.
"""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from monitor.binning import BinCounts
from monitor.detectors import ConfidenceMonitor
from monitor.profile import CATEGORICAL, ColumnProfile
from monitor.references import (
    PREDICTION,
    ROLE_PREDICTION,
    ROLE_SCORE,
    SCORE,
    VersionContext,
    confidence,
)
from monitor.windows import WindowCutter, WindowPart
from registry import logschema

if TYPE_CHECKING:
    from collections.abc import Callable

    from monitor.config import MonitorConfig
    from monitor.logstore import Segment
    from monitor.store import MonitorStore

BATCH_ROWS = 65_536
REQUIRED = ("ts", "request_id", "version", "route")


class SegmentError(Exception):
    """A segment that cannot be used (foreign, corrupt, mismatched); recorded, not fatal."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _code(column: str, categories: list[str]) -> str:
    """SQL for the categorical code of ``column``: 1 + position, 0 unseen, -1 null."""
    return (
        f"CASE WHEN {_quote(column)} IS NULL THEN -1 ELSE coalesce(list_position("
        f"{_sql_list(categories)}, {_quote(column)}::VARCHAR), 0) END"
    )


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


class PredictionIngestor:
    """Counts prediction segments into windows for the versions it is given."""

    def __init__(self, store: MonitorStore, config: MonitorConfig) -> None:
        self.store = store
        self.config = config
        # the binning kernel releases the GIL: columns are counted on two threads
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlgate-bins")

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def columns_of(self, cur: duckdb.DuckDBPyConnection, path: str) -> dict[str, str]:
        try:
            rows = cur.execute(f"DESCRIBE SELECT * FROM read_parquet({_sql_list([path])})")
            return {str(r[0]): str(r[1]) for r in rows.fetchall()}
        except duckdb.Error as exc:
            detail = f"{path}: not a readable Parquet file: {exc}"
            raise SegmentError("corrupt_segment", detail) from exc

    def ingest(
        self,
        segment: Segment,
        local_path: str,
        contexts: Callable[[int], VersionContext | None],
        *,
        now: float,
    ) -> tuple[int, list[str]]:
        """Count one segment; returns (rows counted, problems found). Commits itself."""
        cur = self.store.con.cursor()
        try:
            cols = self.columns_of(cur, local_path)
            missing = [c for c in REQUIRED if c not in cols]
            if missing:
                raise SegmentError(
                    "foreign_segment",
                    f"{segment.path}: not a prediction segment: missing columns {missing};"
                    f" expected {list(logschema.PREDICTION_LEADING)} first, got {list(cols)[:8]}",
                )
            src = f"read_parquet({_sql_list([local_path])})"
            status = "status < 400" if "status" in cols else "true"
            groups = cur.execute(
                f"SELECT version, route, count(*) FROM {src} WHERE {status} GROUP BY ALL"
            ).fetchall()
            return self._ingest_groups(cur, segment, src, status, cols, groups, contexts, now)
        except (duckdb.OutOfMemoryException, duckdb.InterruptException):
            raise  # transient: the segment is retried on the next pass
        except duckdb.Error as exc:
            raise SegmentError("corrupt_segment", f"{segment.path}: read failed: {exc}") from exc
        finally:
            cur.close()

    def _ingest_groups(  # noqa: PLR0913
        self,
        cur: duckdb.DuckDBPyConnection,
        segment: Segment,
        src: str,
        status: str,
        cols: dict[str, str],
        groups: list[tuple[Any, ...]],
        contexts: Callable[[int], VersionContext | None],
        now: float,
    ) -> tuple[int, list[str]]:
        problems: list[str] = []
        cutters: list[tuple[WindowCutter, ConfidenceMonitor, VersionContext]] = []
        pred_tables: list[pa.Table] = []
        total = 0
        model = segment.model or ""
        for version, route, _n in groups:
            if version is None:
                problems.append(f"{segment.path}: {_n} rows without a version were skipped")
                continue
            ctx = contexts(int(version))
            if ctx is None:
                problems.append(
                    f"{segment.path}: version {version} of model {model} is not in the"
                    f" registry; {_n} rows skipped"
                )
                continue
            absent = [
                logschema.feature_column(f)
                for f in ctx.feature_names
                if logschema.feature_column(f) not in cols
            ]
            if absent:
                problems.append(
                    f"{segment.path}: columns do not match model {model} version {version}:"
                    f" missing {absent}; {_n} rows skipped"
                )
                continue
            cutter = WindowCutter(self.store, self.config, model, int(version), str(route))
            detector = ConfidenceMonitor.load(
                self.store, model, int(version), str(route), config=self.config
            )
            query, names = self._select(ctx, cols, src, status)
            reader = cur.sql(query, params=[int(version), str(route)]).to_arrow_reader(BATCH_ROWS)
            for batch in reader:
                total += batch.num_rows
                table = self._count_batch(ctx, cutter, detector, batch, names)
                if table is not None:
                    pred_tables.append(table)
            cutter.close_time_windows()
            cutters.append((cutter, detector, ctx))
        self._commit(segment, cutters, pred_tables, total, problems, now)
        return total, problems

    def _select(
        self, ctx: VersionContext, cols: dict[str, str], src: str, status: str
    ) -> tuple[str, list[str]]:
        exprs = ["epoch_us(ts) AS __ts"]
        if self.config.keep_prediction_rows:
            # 64-bit hash of the request id: the join key with feedback (same hash there)
            exprs.append("hash(request_id::VARCHAR) AS __rid")
        names: list[str] = []
        for col in ctx.columns():
            if col.role in (ROLE_SCORE, ROLE_PREDICTION):
                continue
            source = logschema.feature_column(col.name)
            alias = _quote("c_" + col.name)
            if source not in cols:
                exprs.append(f"NULL::DOUBLE AS {alias}")
            elif col.kind == CATEGORICAL:
                exprs.append(f"{_code(source, col.categories)} AS {alias}")
            else:
                exprs.append(f"TRY_CAST({_quote(source)} AS DOUBLE) AS {alias}")
            names.append(col.name)
        if "prediction" in cols:
            if ctx.task == "classification":
                exprs.append(f"{_code('prediction', ctx.classes)} AS __pred")
            else:
                exprs.append("TRY_CAST(prediction AS DOUBLE) AS __pred")
        if ctx.task == "classification":
            probas = ctx.proba_columns()
            if probas and all(c in cols for c in probas):
                exprs += [
                    f"TRY_CAST({_quote(c)} AS DOUBLE) AS __p{k}" for k, c in enumerate(probas)
                ]
        where = f"version = ? AND route = ? AND {status}"
        return f"SELECT {', '.join(exprs)} FROM {src} WHERE {where}", names

    def _count_batch(
        self,
        ctx: VersionContext,
        cutter: WindowCutter,
        detector: ConfidenceMonitor,
        batch: pa.RecordBatch,
        names: list[str],
    ) -> pa.Table | None:
        fields = batch.schema.names
        ts = batch.column("__ts").to_numpy(zero_copy_only=False).astype(np.int64)
        arrays = {n: batch.column("c_" + n).to_numpy(zero_copy_only=False) for n in names}
        pred = None
        if "__pred" in fields:
            pred = batch.column("__pred").to_numpy(zero_copy_only=False).astype(np.float64)
        proba = None
        if "__p0" in fields:
            k = len(ctx.classes)
            proba = np.column_stack(
                [batch.column(f"__p{j}").to_numpy(zero_copy_only=False) for j in range(k)]
            ).astype(np.float64)
        score = confidence(proba) if proba is not None else None
        if ctx.task != "classification":
            score = pred
        cols = {c.name: c for c in ctx.columns()}
        if PREDICTION in cols and pred is not None:
            arrays[PREDICTION] = pred
            names = [*names, PREDICTION]
        if SCORE in cols and score is not None:
            arrays[SCORE] = score
            names = [*names, SCORE]
        if self.config.window_seconds is None:
            pieces = [(p, np.arange(a, b)) for p, a, b in cutter.split_rows(batch.num_rows)]
        else:
            pieces = cutter.split_time(ts)
        window_ids = np.empty(batch.num_rows, dtype=np.int64)
        for part, idx in pieces:
            contiguous = len(idx) > 0 and idx[-1] - idx[0] + 1 == len(idx)
            sel: slice | np.ndarray = slice(int(idx[0]), int(idx[-1]) + 1) if contiguous else idx
            window_ids[sel] = part.window_id
            part.span(ts[sel])
            jobs = [(cols[n], arrays[n][sel], part) for n in names]
            list(self.pool.map(lambda job: self._count(ctx, *job), jobs))
            if score is not None:
                fired = detector.update(score[sel])
                if fired:
                    part.flags["adwin"] = part.flags.get("adwin", 0) + fired
        if not self.config.keep_prediction_rows:
            return None
        return self._prediction_rows(batch, window_ids, pred, proba)

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

    @staticmethod
    def _prediction_rows(
        batch: pa.RecordBatch,
        window_ids: np.ndarray,
        pred: np.ndarray | None,
        proba: np.ndarray | None,
    ) -> pa.Table:
        n = batch.num_rows
        probas: pa.Array = pa.nulls(n, pa.list_(pa.float32()))
        if proba is not None:
            flat = pa.array(proba.astype(np.float32).ravel())
            probas = pa.FixedSizeListArray.from_arrays(flat, proba.shape[1]).cast(
                pa.list_(pa.float32())
            )
        return pa.table(
            {
                "window_id": pa.array(window_ids),
                "rid": batch.column("__rid").cast(pa.uint64()),
                "prediction": pa.array(
                    pred if pred is not None else np.full(n, np.nan), pa.float64(), from_pandas=True
                ),
                "probas": probas,
            }
        )

    def _commit(
        self,
        segment: Segment,
        cutters: list[tuple[WindowCutter, ConfidenceMonitor, VersionContext]],
        pred_tables: list[pa.Table],
        total: int,
        problems: list[str],
        now: float,
    ) -> None:
        con = self.store.con
        con.execute("BEGIN")
        try:
            for cutter, detector, ctx in cutters:
                cutter.write({c.name: c for c in ctx.columns()})
                detector.save(self.store)
            if pred_tables:
                self.store.insert_arrow("prediction_rows", pa.concat_tables(pred_tables))
            con.execute(
                "INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    segment.path,
                    segment.kind,
                    segment.model,
                    segment.size,
                    segment.mtime_ns,
                    total,
                    "problem" if problems else "ok",
                    "; ".join(problems) or None,
                    now,
                ],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def dumps_state(obj: object) -> bytes:
    """Detector state for the monitor's own DuckDB file (written and read only by us)."""
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
