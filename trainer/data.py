"""Training data: labelled production rows from the log store, plus the reference sample.

Predictions and feedback are read with DuckDB straight from the log store's Parquet segments
(listed by the monitor's :class:`monitor.ingest.logstore.LogStore`; on S3 through fsspec, registered
with DuckDB) and joined on the monitor's own key (:func:`monitor.ingest.segment.request_hash_sql`),
so the trainer learns from exactly the rows the monitor judged. Only answered (status 200)
rows of the primary route count (a shadow's copy of a request is not a second example), the
last label sent for a request wins, and only the champion's input features are kept.

The production rows are ordered by time: the newest ``holdout_share`` form the holdout, the
``holdout_gap_share`` before it are left out, the rest (plus the reference sample, which is
older than any of them) is what a candidate is trained on.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from monitor.ingest.logstore import LogStore
from monitor.ingest.segment import request_hash_sql
from registry.logschema import (
    FEATURE_PREFIX,
    FEEDBACK,
    PREDICTIONS,
    ROUTE_SHADOW,
    TRAFFIC_COLUMN,
)
from trainer.errors import RunFailed, RunSkipped

if TYPE_CHECKING:
    from registry import ModelVersion, Registry
    from trainer.settings import TrainerSettings

TS = "ts"
TARGET = "__target__"
RID = "__rid__"  # the join key of a prediction row (a name no feature column takes)


@dataclass
class TrainingData:
    """One run's rows. ``X_*`` are frames of the champion's features in manifest order."""

    task: str
    features: list[str]
    classes: list[Any] | None
    X_train: pl.DataFrame
    y_train: np.ndarray
    w_train: np.ndarray
    X_holdout: pl.DataFrame
    y_holdout: np.ndarray
    rows: dict[str, int] = field(default_factory=dict)
    time_range: dict[str, str | None] = field(default_factory=dict)
    fingerprint: str = ""

    def matrix(self, frame: pl.DataFrame) -> np.ndarray:
        """A frame as the array an estimator is fitted and scored on: float32 (what the
        gateway feeds) when every feature is numeric, else objects."""
        if all(dtype.is_numeric() for dtype in frame.dtypes):
            return frame.to_numpy().astype(np.float32)
        return frame.to_numpy().astype(object)

    def training_frame(self, target: str) -> pl.DataFrame:
        """The training rows with the label as column ``target`` (what a user recipe gets)."""
        return self.X_train.with_columns(pl.Series(target, self.y_train))

    def reference_sample(self, rows: int, label_column: str, *, seed: int = 0) -> pl.DataFrame:
        """Up to ``rows`` training rows with their label: the new version's reference."""
        frame = self.training_frame(label_column)
        if frame.height > rows:
            frame = frame.sample(rows, seed=seed)
        return frame


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join(_sql_str(p) for p in paths) + "]"


class LogReader:
    """DuckDB over one model's segments of a log store (local path or fsspec URL)."""

    def __init__(self, logs_url: str, *, storage_options: dict[str, Any] | None = None) -> None:
        self.logs = LogStore(logs_url, storage_options=storage_options)
        self.storage_options = storage_options or {}

    def paths(self, kind: str, model: str) -> list[str]:
        return [s.path for s in self.logs.list(kind) if s.model == model and s.is_parquet]

    def connect(self, *, threads: int = 2) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(config={"threads": threads})
        if self.logs.local_root is None:
            import fsspec

            fs, _ = fsspec.core.url_to_fs(self.logs.url, **self.storage_options)
            con.register_filesystem(fs)
        return con


def labelled_rows(
    reader: LogReader,
    model: str,
    features: list[str],
    *,
    recent_rows: int,
    since: str | None = None,
    threads: int = 2,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The newest ``recent_rows`` (0: all) labelled production rows of ``model`` (logged at
    or after ``since``, an ISO-8601 time, when given), oldest first: ``ts``, one column per
    feature, ``label`` and ``label_value``; and counts."""
    predictions = reader.paths(PREDICTIONS, model)
    feedback = reader.paths(FEEDBACK, model)
    counts = {"prediction_segments": len(predictions), "feedback_segments": len(feedback)}
    if not predictions or not feedback:
        return pl.DataFrame(), counts
    con = reader.connect(threads=threads)
    try:
        src = f"read_parquet({_sql_list(predictions)}, union_by_name = true)"
        logged = {str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
        wanted = [FEATURE_PREFIX + f for f in features]
        missing = [c for c in wanted if c not in logged]
        if missing:
            raise RunFailed(
                f"model {model!r}: the logged rows do not match the champion's feature schema: "
                f"the prediction log has no column(s) {missing[:8]} "
                f"(it has {sorted(c for c in logged if c.startswith(FEATURE_PREFIX))[:8]})"
            )
        cols = ", ".join(f'p."{FEATURE_PREFIX}{f}" AS "{f}"' for f in features)
        limit = f"LIMIT {int(recent_rows)}" if recent_rows > 0 else ""
        after = f"AND p.ts >= {_sql_str(since)}::TIMESTAMPTZ" if since else ""
        # load-test rows (X-Mlgate-Traffic) are synthetic: never trained on
        if TRAFFIC_COLUMN in logged:
            after += f' AND p."{TRAFFIC_COLUMN}" IS NULL'
        fb = f"read_parquet({_sql_list(feedback)}, union_by_name = true)"
        labels = f"""
            SELECT {request_hash_sql("request_id")} AS rid,
                   arg_max(label::VARCHAR, ts) AS label,
                   arg_max(TRY_CAST(label_value AS DOUBLE), ts) AS label_value
            FROM {fb} WHERE request_id IS NOT NULL AND model = {_sql_str(model)}
            GROUP BY rid
        """
        where = f"""p.status = 200 AND p.route <> {_sql_str(ROUTE_SHADOW)}
              AND p.model = {_sql_str(model)} {after}"""
        if limit:  # the newest rows only: DuckDB's top-N never holds more than the limit
            sql = f"""
                WITH f AS ({labels})
                SELECT p.ts AS {TS}, {cols}, f.label, f.label_value
                FROM {src} p JOIN f ON {request_hash_sql("p.request_id")} = f.rid
                WHERE {where} ORDER BY p.ts DESC {limit}
            """
            table = con.sql(sql).to_arrow_table()
        else:
            table = _all_labelled(con, labels, f"""
                SELECT {request_hash_sql("p.request_id")} AS {RID}, p.ts AS {TS}, {cols}
                FROM {src} p WHERE {where}
            """)  # fmt: skip
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        if limit:  # newest first for the limit; oldest first for everyone else
            frame = frame.reverse()
    except duckdb.Error as exc:
        raise RunFailed(
            f"model {model!r}: cannot read the log store {reader.logs.url}: {exc}"
        ) from exc
    finally:
        con.close()
    return frame, counts


def _all_labelled(con: duckdb.DuckDBPyConnection, labels_sql: str, rows_sql: str) -> pa.Table:
    """Every row of ``rows_sql`` (``RID``, ``ts``, features) that has a label in
    ``labels_sql`` (``rid``, ``label``, ``label_value``), with it, oldest first.

    Joined here rather than by DuckDB: its hash join returns rows in no order, and sorting
    the 1M x 32 result again by time was ~40% of the assembly's CPU time (the payload moves
    through the sort). The scan keeps the segments' own order, which is time order for a
    gateway's segments; the labels are looked up by hash (``index_in``), and only rows out
    of time order are sorted.
    """
    found = con.sql(labels_sql).to_arrow_table()
    rows = con.sql(rows_sql).to_arrow_table()
    index = pc.index_in(rows.column(RID), value_set=found.column("rid").combine_chunks())
    matched = pc.is_valid(index)
    if not pc.all(matched).as_py():
        rows, index = rows.filter(matched), index.filter(matched)
    picked = found.select(["label", "label_value"]).take(index)
    table = rows.drop_columns([RID])
    for name in ("label", "label_value"):
        table = table.append_column(name, picked.column(name))
    ts = table.column(TS)
    if ts.null_count or not _ascending(ts):
        table = table.take(pc.sort_indices(table, [(TS, "ascending")]))  # nulls last
    return table


def _ascending(ts: pa.ChunkedArray) -> bool:
    """Whether the timestamps never go back (checked on their integer values)."""
    values = ts.cast(pa.int64()).to_numpy()
    return bool(np.all(values[1:] >= values[:-1]))


def _targets(
    frame: pl.DataFrame, task: str, classes: list[Any] | None, *, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """(labels as the model's classes or numbers, mask of usable rows)."""
    if task == "regression":
        values = frame["label_value"].cast(pl.Float64).to_numpy()
        ok = np.isfinite(values)
        if frame.height and not ok.any():
            shown = frame["label"].head(3).to_list()
            raise RunFailed(
                f"{what}: labels are not numbers (e.g. {shown}); a regressor needs them"
            )
        return values, ok
    assert classes is not None
    texts = frame["label"].cast(pl.String)
    keys = [str(c) for c in classes]
    codes = texts.replace_strict(keys, list(range(len(keys))), default=-1, return_dtype=pl.Int64)
    index = codes.fill_null(-1).to_numpy()
    ok = index >= 0
    if frame.height and not ok.any():
        shown = sorted(str(t) for t in texts.unique().head(5).to_list())
        raise RunFailed(
            f"{what}: labels of the wrong type: expected the model's classes {classes[:10]}, "
            f"got {shown}"
        )
    labels = np.asarray(classes)[np.where(ok, index, 0)]
    return labels, ok


def _reference_rows(
    registry: Registry,
    champion: ModelVersion,
    settings: TrainerSettings,
) -> pl.DataFrame | None:
    """The champion's reference sample with its label column renamed ``label``, or None."""
    if not settings.keep_reference:
        return None
    ref = registry.load_reference(champion)
    if ref is None or settings.label_column not in ref.columns:
        return None
    features = champion.input_schema.names
    cols = [pl.col(f) for f in features]
    label = pl.col(settings.label_column)
    return ref.select(
        *cols,
        label.cast(pl.String).alias("label"),
        label.cast(pl.Float64, strict=False).alias("label_value"),
    )


def fingerprint(X: pl.DataFrame, y: np.ndarray) -> str:
    """sha256 of the training rows (feature names, values and labels), so a gate result can
    be reproduced from the same data.

    >>> a = pl.DataFrame({"x": [1.0, 2.0]})
    >>> fingerprint(a, np.array([0, 1])) == fingerprint(a, np.array([0, 1]))
    True
    """
    h = hashlib.sha256()
    h.update(",".join(X.columns).encode())
    for name in X.columns:
        s = X[name]
        if s.dtype.is_numeric():
            h.update(np.ascontiguousarray(_floats(s)).data)
        else:
            h.update("\x00".join("" if v is None else str(v) for v in s.to_list()).encode())
    if y.dtype.kind in "biuf":
        h.update(np.ascontiguousarray(y, dtype=np.float64).data)
    else:
        h.update("\x00".join(map(str, y.tolist())).encode())
    return h.hexdigest()


def _floats(s: pl.Series) -> np.ndarray:
    """A numeric column as float64, nulls as NaN (no copy for a float64 column without
    nulls: the fingerprint reads 1M x 32 values)."""
    if s.dtype != pl.Float64:
        s = s.cast(pl.Float64)
    if s.null_count():
        s = s.fill_null(math.nan)
    return s.to_numpy()


def _features(frame: pl.DataFrame, champion: ModelVersion) -> pl.DataFrame:
    out = []
    for feature in champion.input_schema.features:
        col = pl.col(feature.name)
        out.append(col.cast(pl.String) if feature.is_categorical else col.cast(pl.Float64))
    return frame.select(out)


def assemble(
    registry: Registry,
    reader: LogReader,
    champion: ModelVersion,
    settings: TrainerSettings,
    *,
    since: str | None = None,
) -> TrainingData:
    """The run's training and holdout rows; ``RunSkipped`` when there are too few labels or
    one class only, ``RunFailed`` when the labels or the logged schema are wrong.

    ``since``: the start of the alerted window; with ``since_alert_window`` only the rows
    from there on are used, when enough of them are labelled."""
    model = champion.name
    task = champion.output_schema.task
    classes = champion.output_schema.classes
    features = champion.input_schema.names
    frame = pl.DataFrame()
    used_since = None
    if since and settings.since_alert_window:
        frame, counts = labelled_rows(
            reader,
            model,
            features,
            recent_rows=settings.recent_rows,
            since=since,
            threads=settings.data_threads,
        )
        used_since = since
    if frame.height < settings.min_labelled_rows:
        frame, counts = labelled_rows(
            reader,
            model,
            features,
            recent_rows=settings.recent_rows,
            threads=settings.data_threads,
        )
        used_since = None
    if frame.height == 0:
        raise RunSkipped(
            f"model {model!r}: no labelled production rows yet "
            f"({counts['prediction_segments']} prediction and {counts['feedback_segments']} "
            "feedback segments in the log store); send ground truth to "
            f"/v2/models/{model}/feedback"
        )
    y_all, ok = _targets(frame, task, classes, what=f"model {model!r}")
    dropped = int((~ok).sum())
    if dropped:
        frame, y_all = frame.filter(pl.Series(ok)), y_all[ok]
    n = frame.height
    if n < settings.min_labelled_rows:
        raise RunSkipped(
            f"model {model!r}: only {n} labelled production rows, fewer than "
            f"min_labelled_rows = {settings.min_labelled_rows}"
        )
    n_holdout = max(1, math.ceil(n * settings.holdout_share))
    n_gap = math.floor(n * settings.holdout_gap_share)
    n_train = n - n_holdout - n_gap
    if n_holdout < settings.min_holdout_rows or n_train <= 0:
        raise RunSkipped(
            f"model {model!r}: a holdout of {n_holdout} rows (holdout_share "
            f"{settings.holdout_share} of {n}) is fewer than min_holdout_rows = "
            f"{settings.min_holdout_rows}"
        )
    X_prod = _features(frame, champion)
    X_train, y_train = X_prod.head(n_train), y_all[:n_train]
    X_holdout, y_holdout = X_prod.tail(n_holdout), y_all[n - n_holdout :]
    weights = np.ones(n_train)
    n_reference = 0
    ref = _reference_rows(registry, champion, settings)
    if ref is not None and ref.height:
        y_ref, ok_ref = _targets(ref, task, classes, what=f"model {model!r} reference sample")
        ref = ref.filter(pl.Series(ok_ref))
        y_ref = y_ref[ok_ref]
        n_reference = ref.height
        X_train = pl.concat([_features(ref, champion), X_train], how="vertical_relaxed")
        y_train = np.concatenate([y_ref, y_train])
        weights = np.concatenate([np.full(n_reference, settings.reference_weight), weights])
    if task == "classification":
        present = np.unique(y_train)
        if len(present) < 2:
            raise RunSkipped(
                f"model {model!r}: the training rows hold one class only ({present.tolist()}); "
                "a classifier needs at least two"
            )
    ts = frame[TS]
    return TrainingData(
        task=task,
        features=features,
        classes=classes,
        X_train=X_train,
        y_train=y_train,
        w_train=weights,
        X_holdout=X_holdout,
        y_holdout=y_holdout,
        rows={
            "production": n,
            "reference": n_reference,
            "train": X_train.height,
            "gap": n_gap,
            "holdout": n_holdout,
            "dropped_labels": dropped,
        },
        time_range={
            "since_alert_window": used_since,
            "start": _iso(ts[0]),
            "train_end": _iso(ts[n_train - 1]),
            "holdout_start": _iso(ts[n - n_holdout]),
            "end": _iso(ts[n - 1]),
        },
        fingerprint=fingerprint(X_train, y_train),
    )


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return str(text).replace("+00:00", "Z")
