"""What a rollout is decided on, read with DuckDB from the log store.

The log store is the monitor's :class:`~monitor.ingest.logstore.LogStore` (local path
or fsspec URL) and predictions are joined to feedback on the monitor's key
(:func:`~monitor.ingest.segment.request_hash_sql`), so the two readers of the data plane agree on
what a labelled row is. Column names come from :mod:`registry.logschema`.

A request is the ``request_id`` without a trailing ``/<i>`` (row ``i`` of a many-row
request); its status is the worst of its rows and its latency the longest. The *candidate*
is the rollout's version on the ``canary`` and ``shadow`` routes; the *champion* is the
champion's version on the ``champion`` route. *Pairs* are rows (same ``request_id``) both
answered with status 200: the shadow's copy of a champion-routed request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from monitor.ingest.segment import request_hash_sql
from registry.logschema import FEEDBACK, PREDICTIONS, ROUTE_CANARY, ROUTE_CHAMPION, ROUTE_SHADOW
from trainer.promotion import stats

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

    from monitor.ingest.logstore import LogStore


class LogReadError(Exception):
    """The log store's segments could not be read (a corrupt or foreign file, a storage
    error); the message names the query's error."""


class Side(msgspec.Struct, frozen=True):
    """Request counts of one side over one window."""

    requests: int = 0
    errors: int = 0  # requests with a 5xx row
    quantile_ms: float | None = None  # the plan's latency quantile
    canary_requests: int = 0  # of which answered on the canary route (candidate only)


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """Figures of one analysis: the step window for errors and latency, the whole rollout
    for pairs (agreement, labelled metric)."""

    candidate: Side
    champion: Side  # same window as the candidate
    champion_rollout: Side  # since the rollout began (the baseline at 100 %)
    latencies_ms: list[float]  # the candidate's request latencies in the step window
    compared: int = 0
    agreed: int = 0
    matured: int = 0  # pairs old enough for their labels to have arrived
    pairs: int = 0  # of which labelled
    better: int = 0  # labelled pairs the candidate gets right (closer) and the champion not
    worse: int = 0
    has_feedback: bool = False
    segments: int = 0


@dataclass(frozen=True)
class Window:
    """Which rows an analysis reads (UTC datetimes)."""

    rollout_since: datetime
    step_since: datetime
    until: datetime
    matured_before: datetime
    candidate: int
    champion: int
    quantile: float = 0.99
    regression: bool = False
    rel_tol: float = 0.05
    extra: dict[str, Any] = field(default_factory=dict)


# a segment's write time comes from the storage's clock, its rows' ts from the gateway's
_CLOCK_SKEW_NS = 300 * 10**9

_REQUESTS = f"""
CREATE OR REPLACE TEMP TABLE rows AS
SELECT request_id, regexp_replace(request_id, '/[0-9]+$', '') AS request,
       CAST(version AS BIGINT) AS version, route, status, latency_us, ts,
       CAST(prediction AS VARCHAR) AS pred_s, TRY_CAST(prediction AS DOUBLE) AS pred_d,
       CASE WHEN CAST(version AS BIGINT) = $candidate
                 AND route IN ('{ROUTE_CANARY}', '{ROUTE_SHADOW}') THEN 'candidate'
            WHEN CAST(version AS BIGINT) = $champion AND route = '{ROUTE_CHAMPION}'
                 THEN 'champion' END AS side
FROM read_parquet($files, union_by_name = true, hive_partitioning = false)
WHERE ts >= $rollout_since AND ts <= $until
"""

_SIDES = """
WITH requests AS (
    SELECT side, request, any_value(route) AS route, max(status) AS status,
           max(latency_us) AS latency_us, min(ts) AS ts
    FROM rows WHERE side IS NOT NULL GROUP BY side, request
)
SELECT side, ts >= $step_since AS in_step, count(*), count(*) FILTER (WHERE status >= 500),
       count(*) FILTER (WHERE route = 'canary'), list(latency_us)
FROM requests GROUP BY ALL
"""

_PAIRS = """
CREATE OR REPLACE TEMP TABLE pairs AS
WITH cand AS (
    SELECT request_id, pred_s, pred_d, ts FROM rows
    WHERE side = 'candidate' AND status = 200
    QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY ts) = 1
), champ AS (
    SELECT request_id, pred_s, pred_d FROM rows
    WHERE version = $champion AND status = 200
    QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY route <> 'champion', ts) = 1
)
SELECT c.request_id, c.ts, c.pred_s AS cand_s, c.pred_d AS cand_d,
       b.pred_s AS champ_s, b.pred_d AS champ_d
FROM cand c JOIN champ b USING (request_id)
"""

_AGREEMENT = """
SELECT count(*), count(*) FILTER (WHERE CASE WHEN $regression
        THEN abs(cand_d - champ_d) <= $rel_tol * abs(champ_d) + 1e-9
        ELSE cand_s = champ_s END),
       count(*) FILTER (WHERE ts <= $matured_before)
FROM pairs
"""


def _labelled_sql() -> str:
    key = request_hash_sql("request_id")
    return f"""
WITH fb AS (
    SELECT {key} AS rid, label::VARCHAR AS label, TRY_CAST(label_value AS DOUBLE) AS y
    FROM read_parquet($feedback, union_by_name = true, hive_partitioning = false)
    WHERE request_id IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY ts DESC) = 1
), judged AS (
    SELECT CASE WHEN $regression THEN abs(p.cand_d - f.y) < abs(p.champ_d - f.y)
                ELSE (p.cand_s = f.label OR p.cand_d = f.y)
                     AND NOT coalesce(p.champ_s = f.label OR p.champ_d = f.y, false) END
               AS better,
           CASE WHEN $regression THEN abs(p.cand_d - f.y) > abs(p.champ_d - f.y)
                ELSE (p.champ_s = f.label OR p.champ_d = f.y)
                     AND NOT coalesce(p.cand_s = f.label OR p.cand_d = f.y, false) END
               AS worse
    FROM pairs p JOIN fb f ON {request_hash_sql("p.request_id")} = f.rid
    WHERE p.ts <= $matured_before
      AND (NOT $regression OR (f.y IS NOT NULL AND p.cand_d IS NOT NULL
                               AND p.champ_d IS NOT NULL))
)
SELECT count(*), count(*) FILTER (WHERE better), count(*) FILTER (WHERE worse) FROM judged
"""


def _files(store: LogStore, kind: str, model: str, since: datetime) -> list[str]:
    """``model``'s segments of ``kind`` whose day partition and write time can hold rows since
    ``since``. Only that model's day folders are listed (not the whole store: this runs at
    every analysis); file names follow the monitor's ``LogStore`` (temporary names skipped)."""
    first_day = since.astimezone(UTC).date().isoformat()
    oldest_ns = int(since.timestamp() * 1e9) - _CLOCK_SKEW_NS
    if store.local_root is not None:
        return _local_files(store.local_root / kind / f"model={model}", first_day, oldest_ns)
    import fsspec

    fs, root = fsspec.core.url_to_fs(f"{store.url}/{kind}/model={model}", **store.storage_options)
    # object-store filesystems cache directory listings per instance (one instance is shared
    # across the process, DuckDB's reader included): a long-running controller would see the
    # segments of its first look forever. Forget this model's listings, then list afresh.
    fs.invalidate_cache(root)
    for cached in [k for k in fs.dircache if str(k).startswith(root)]:
        fs.dircache.pop(cached, None)
    try:
        found = fs.find(root)
    except FileNotFoundError:
        return []
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    out = []
    for path in sorted(str(p) for p in found):
        folder, _, name = path[len(root) :].strip("/").rpartition("/")
        if folder.startswith("date=") and "/" not in folder and folder[5:] >= first_day:
            if not _temporary(name):
                out.append(path if "://" in path else f"{protocol}://{path}")
    return out


def _temporary(name: str) -> bool:
    # writers publish with temp + rename; the monitor's LogStore skips the same names
    return name.startswith((".", "_")) or not name.endswith(".parquet")


def _local_files(base: Path, first_day: str, oldest_ns: int) -> list[str]:
    out = []
    try:
        days = [d for d in base.iterdir() if d.name.startswith("date=") and d.name[5:] >= first_day]
    except FileNotFoundError:
        return []
    for day in days:
        try:
            entries = list(os.scandir(day))
        except FileNotFoundError:
            continue
        for entry in entries:
            if _temporary(entry.name):
                continue
            try:
                if entry.stat().st_mtime_ns < oldest_ns:
                    continue  # written (atomically, whole) before the window began
            except FileNotFoundError:
                continue
            out.append(entry.path)
    return sorted(out)


def has_feedback(store: LogStore, model: str) -> bool:
    """Whether any feedback segment of ``model`` exists (labels are in use for it)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return bool(_files(store, FEEDBACK, model, epoch))


def _connect(store: LogStore) -> duckdb.DuckDBPyConnection:
    import duckdb

    con = duckdb.connect()
    if store.local_root is None:
        import fsspec

        fs, _ = fsspec.core.url_to_fs(store.url, **store.storage_options)
        con.register_filesystem(fs)
    return con


def gather(store: LogStore, model: str, window: Window) -> Evidence:
    """Read the figures of ``window`` for ``model``; an empty log gives zeros, never an error."""
    files = _files(store, PREDICTIONS, model, window.rollout_since)
    feedback_known = has_feedback(store, model)
    empty = Evidence(candidate=Side(), champion=Side(), champion_rollout=Side(),
                     latencies_ms=[], has_feedback=feedback_known)  # fmt: skip
    if not files:
        return empty
    params: dict[str, Any] = {
        "files": files,
        "candidate": window.candidate,
        "champion": window.champion,
        "rollout_since": window.rollout_since,
        "until": window.until,
    }
    import duckdb

    con = _connect(store)
    try:
        con.execute(_REQUESTS, params)
        sides = _sides(con, window)
        con.execute(_PAIRS, {"champion": window.champion})
        agree = con.execute(
            _AGREEMENT,
            {"regression": window.regression, "rel_tol": window.rel_tol,
             "matured_before": window.matured_before},
        ).fetchone()  # fmt: skip
        compared, agreed, matured = (int(x or 0) for x in agree) if agree else (0, 0, 0)
        pairs = better = worse = 0
        feedback = _files(store, FEEDBACK, model, window.rollout_since) if matured else []
        if feedback:
            row = con.execute(
                _labelled_sql(),
                {"feedback": feedback, "regression": window.regression,
                 "matured_before": window.matured_before},
            ).fetchone()  # fmt: skip
            pairs, better, worse = (int(x or 0) for x in row) if row else (0, 0, 0)
    except duckdb.Error as exc:
        raise LogReadError(f"{store.url}, model {model!r}: {exc}") from exc
    finally:
        con.close()
    candidate, champion, champion_rollout, latencies = sides
    return Evidence(
        candidate=candidate, champion=champion, champion_rollout=champion_rollout,
        latencies_ms=latencies, compared=compared, agreed=agreed, matured=matured, pairs=pairs,
        better=better, worse=worse, has_feedback=feedback_known, segments=len(files),
    )  # fmt: skip


def _sides(con: duckdb.DuckDBPyConnection, window: Window) -> tuple[Side, Side, Side, list[float]]:
    found: dict[tuple[str, bool], tuple[int, int, int, list[float]]] = {}
    for who, in_step, n, errors, canary, lat in con.execute(
        _SIDES, {"step_since": window.step_since}
    ).fetchall():
        found[(str(who), bool(in_step))] = (int(n), int(errors), int(canary),
                                             [float(x) / 1000.0 for x in lat])  # fmt: skip

    def side(name: str, *, whole: bool) -> tuple[Side, list[float]]:
        parts = [found.get((name, True))] + ([found.get((name, False))] if whole else [])
        n = errors = canary = 0
        latencies: list[float] = []
        for part in parts:
            if part is not None:
                n, errors, canary = n + part[0], errors + part[1], canary + part[2]
                latencies.extend(part[3])
        latencies.sort()  # DuckDB's list() has no order; a sorted list is reproducible
        q = stats.quantile(latencies, window.quantile)
        return Side(requests=n, errors=errors, quantile_ms=q, canary_requests=canary), latencies

    candidate, latencies = side("candidate", whole=False)
    champion, _ = side("champion", whole=False)
    champion_rollout, _ = side("champion", whole=True)
    return candidate, champion, champion_rollout, latencies


def utc(at: datetime | str) -> datetime:
    """An aware UTC datetime from one or an ISO string (``Z`` accepted).

    >>> utc("2026-12-03T07:00:00Z").isoformat()
    '2026-12-03T07:00:00+00:00'
    """
    if isinstance(at, str):
        at = datetime.fromisoformat(at.replace("Z", "+00:00"))
    return at.astimezone(UTC)
