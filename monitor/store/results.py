"""Drift statistics, results, summaries and performance: what the compute stage reads and
writes, and what the report reads back."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from monitor.stats.drift import PSI_EPSILON
from monitor.store.base import Tables
from monitor.store.rows import (
    ColumnCounts,
    DegradedWindow,
    GridWindow,
    LabelledRow,
    LatestSummary,
    MetricResult,
    SummaryRow,
)

if TYPE_CHECKING:
    from monitor.store.windows import Key

# The figures of ``monitor.stats.drift`` from bin counts, for any set of windows at once
# (the formulas and how they match scipy are documented there).
STATS_SQL = """
WITH ids AS (SELECT window_id FROM _window_ids),
cols AS MATERIALIZED (
    SELECT w.window_id, pc.name, pc.kind, pc.role, pc.ref_nulls, pc.std,
           pc.boundaries[1] AS bmin, pc.boundaries[-1] AS bmax,
           pc.ref_cum, pc.ref_coarse, pc.widths, wc.cum, wc.coarse, wc.nulls,
           wc.under_sum, wc.over_sum, wc.total,
           pc.ref_cum[-1]::DOUBLE AS nr, wc.cum[-1]::DOUBLE AS nq
    FROM windows w JOIN ids USING (window_id)
    JOIN versions v ON v.model = w.model AND v.version = w.version
    JOIN profile_columns pc ON pc.profile_id = v.profile_id
                            OR pc.profile_id = v.prediction_profile_id
    JOIN window_counts wc ON wc.window_id = w.window_id AND wc.name = pc.name
    -- literal bounds: DuckDB skips the row groups of other windows instead of decoding
    -- every window's count lists to find the few the join keeps
    WHERE wc.window_id BETWEEN {lo} AND {hi}),
fine AS (
    SELECT window_id, name, max(abs(r / nr - q / nq)) AS ks,
           sum(abs(r / nr - q / nq) * ww) AS w_inner,
           sum(sqrt(greatest(r / nr * (1 - r / nr), 0)) * ww) AS w_spread
    FROM (SELECT window_id, name, nr, nq, unnest(ref_cum) AS r, unnest(cum) AS q,
                 unnest(widths) AS ww
          FROM cols WHERE kind = 'numeric' AND nr > 0 AND nq > 0)
    GROUP BY ALL),
cells AS (
    SELECT window_id, name, r, q, tr, tq, r / tr AS pr, q / tq AS pq
    FROM (SELECT window_id, name,
                 unnest(list_append(ref_coarse, ref_nulls))::DOUBLE AS r,
                 unnest(list_append(coarse, nulls))::DOUBLE AS q,
                 (list_sum(ref_coarse) + ref_nulls)::DOUBLE AS tr,
                 (list_sum(coarse) + nulls)::DOUBLE AS tq
          FROM cols)
    WHERE tr > 0 AND tq > 0),
coarse AS (
    SELECT window_id, name,
        sum((greatest(pq, {eps}) - greatest(pr, {eps}))
            * ln(greatest(pq, {eps}) / greatest(pr, {eps}))) AS psi,
        sqrt(greatest(0.5 * sum(CASE WHEN pr > 0 THEN pr * ln(2 * pr / (pr + pq)) ELSE 0 END)
                    + 0.5 * sum(CASE WHEN pq > 0 THEN pq * ln(2 * pq / (pr + pq)) ELSE 0 END),
                      0)) AS js,
        sum(CASE WHEN r + q > 0 THEN
                 power(r - tr * (r + q) / (tr + tq), 2) / (tr * (r + q) / (tr + tq))
               + power(q - tq * (r + q) / (tr + tq), 2) / (tq * (r + q) / (tr + tq))
            END) AS chi2,
        count(CASE WHEN r + q > 0 THEN 1 END) - 1 AS chi2_dof
    FROM cells GROUP BY ALL)
SELECT c.window_id, c.name, c.kind, c.role, c.nr AS ref_rows, c.nq AS rows, c.nulls,
       co.psi, co.js, co.chi2, co.chi2_dof, f.ks,
       CASE WHEN c.kind = 'numeric' AND c.nq > 0 AND c.nr > 0 THEN
            f.w_inner + (c.cum[1] * c.bmin - c.under_sum) / c.nq
            + (c.over_sum - (c.cum[-1] - c.cum[-2]) * c.bmax) / c.nq
       END AS wasserstein_raw, f.w_spread,
       c.std, c.ref_nulls,
       c.nulls / nullif(c.nq + c.nulls, 0) AS null_rate,
       c.ref_nulls / nullif(c.nr + c.ref_nulls, 0) AS ref_null_rate,
       CASE WHEN c.kind = 'categorical' THEN c.cum[1] / nullif(c.nq, 0) END AS unseen_share,
       CASE WHEN c.kind = 'numeric' THEN c.total / nullif(c.nq, 0) END AS mean
FROM cols c
LEFT JOIN fine f USING (window_id, name)
LEFT JOIN coarse co USING (window_id, name)
ORDER BY c.window_id, c.name
""".replace("{eps}", repr(PSI_EPSILON))


class ResultTables(Tables):
    def window_statistics(self, window_ids: list[int]) -> pa.Table:
        """One row per (window, column profile) of the figures of ``STATS_SQL`` (raises
        ``duckdb.OutOfMemoryException`` when the windows do not fit the memory limit)."""
        ids = pa.table({"window_id": pa.array(window_ids, pa.int64())})
        self.con.register("_window_ids", ids)
        try:
            lo, hi = min(window_ids), max(window_ids)
            sql = STATS_SQL.replace("{lo}", str(int(lo))).replace("{hi}", str(int(hi)))
            return self.con.sql(sql).to_arrow_table()
        finally:
            self.con.unregister("_window_ids")

    def widest_version_bins(self) -> int:
        """Reference bins (fine and coarse, every column) of the widest version."""
        rows = self.con.execute(
            "SELECT max(bins) FROM (SELECT"
            " sum(coalesce(len(pc.ref_cum), 0) + coalesce(len(pc.ref_coarse), 0)) AS bins"
            " FROM versions v JOIN profile_columns pc ON pc.profile_id = v.profile_id"
            " OR pc.profile_id = v.prediction_profile_id GROUP BY v.model, v.version)"
        ).fetchall()
        return int(rows[0][0]) if rows and rows[0][0] else 1

    def streaks(self, key: Key, seq: int) -> dict[str, int]:
        """Each column's drift streak at window ``seq`` of a stream."""
        rows = self.con.execute(
            "SELECT name, streak FROM results WHERE model=? AND version=? AND route=? AND seq=?",
            [*key, seq],
        ).fetchall()
        return {str(n): int(s) for n, s in rows}

    def replace_results(
        self, window_ids: list[int], results: pa.Table, summaries: pa.Table
    ) -> None:
        """Results and summaries of windows, replacing earlier ones, the windows marked
        computed: one transaction."""
        ids = pa.table({"window_id": pa.array(window_ids, pa.int64())})
        self.con.register("_ids", ids)
        try:
            with self.transaction():
                self.con.execute(
                    "DELETE FROM results WHERE window_id IN (SELECT window_id FROM _ids)"
                )
                self.con.execute(
                    "DELETE FROM summaries WHERE window_id IN (SELECT window_id FROM _ids)"
                )
                self.insert_arrow("results", results)
                self.insert_arrow("summaries", summaries)
                self.con.execute(
                    "UPDATE windows SET computed_revision = revision"
                    " WHERE window_id IN (SELECT window_id FROM _ids)"
                )
        finally:
            self.con.unregister("_ids")

    # -- performance ------------------------------------------------------------------------
    def labelled_counts(self) -> dict[int, int]:
        """Labelled rows per complete window that has at least one label."""
        rows = self.con.execute(
            "SELECT p.window_id, count(*) FROM prediction_rows p"
            " JOIN windows w ON w.window_id = p.window_id"
            " JOIN feedback f ON f.rid = p.rid AND f.model = w.model WHERE w.complete"
            " GROUP BY 1"
        ).fetchall()
        return {int(w): int(n) for w, n in rows}

    def labelled_rows(self, window_id: int) -> list[LabelledRow]:
        rows = self.con.execute(
            "SELECT p.prediction, p.probas, f.label, f.label_value"
            " FROM prediction_rows p JOIN windows w ON w.window_id = p.window_id"
            " JOIN feedback f ON f.rid = p.rid AND f.model = w.model WHERE p.window_id = ?",
            [window_id],
        ).fetchall()
        return [LabelledRow(*r) for r in rows]

    def summary_labelled_rows(self) -> dict[int, int]:
        """Labelled rows each computed window's metrics were last computed on."""
        rows = self.con.execute("SELECT window_id, labelled_rows FROM summaries").fetchall()
        return {int(w): int(n or 0) for w, n in rows}

    def window_task(self, window_id: int) -> tuple[str, list[str]] | None:
        """``(task, classes)`` of the version a window belongs to."""
        row = self.con.execute(
            "SELECT v.task, v.classes FROM windows w JOIN versions v"
            " ON v.model = w.model AND v.version = w.version WHERE w.window_id = ?",
            [window_id],
        ).fetchone()
        return (str(row[0]), [str(c) for c in row[1] or []]) if row else None

    def set_performance(self, window_id: int, performance: dict[str, Any], labelled: int) -> None:
        self.con.execute(
            "UPDATE summaries SET performance = ?, labelled_rows = ? WHERE window_id = ?",
            [json.dumps(performance), labelled, window_id],
        )

    # -- what the report and the alerts read ------------------------------------------------
    def summaries(self, model: str, version: int | None, route: str | None) -> list[SummaryRow]:
        """Computed windows of a model, oldest first."""
        sql = (
            "SELECT s.window_id, s.version, s.route, s.seq, w.start_us, w.end_us, s.rows,"
            " s.share_drifted, s.dataset_drift, s.prediction, s.performance, s.labelled_rows"
            " FROM summaries s JOIN windows w USING (window_id) WHERE s.model = ?"
        )
        params: list[Any] = [model]
        if version is not None:
            sql += " AND s.version = ?"
            params.append(version)
        if route is not None:
            sql += " AND s.route = ?"
            params.append(route)
        rows = self.con.execute(sql + " ORDER BY w.end_us, s.seq", params).fetchall()
        return [SummaryRow(*r) for r in rows]

    def feature_results(self, window_id: int) -> list[dict[str, Any]]:
        """The wide ``results`` rows of a window's features, by column name."""
        cur = self.con.execute(
            "SELECT * FROM results WHERE window_id = ? AND role = 'feature'", [window_id]
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def feature_names(self, window_id: int) -> list[str]:
        """The manifest's feature order of the version a window belongs to."""
        row = self.con.execute(
            "SELECT v.features FROM windows w JOIN versions v ON v.model = w.model"
            " AND v.version = w.version WHERE w.window_id = ?",
            [window_id],
        ).fetchone()
        return [str(n) for n in row[0] or []] if row else []

    def window_profile_ids(self, window_id: int) -> list[str]:
        """Feature and prediction profile ids of the version a window belongs to."""
        row = self.con.execute(
            "SELECT v.profile_id, v.prediction_profile_id FROM windows w JOIN versions v"
            " ON v.model = w.model AND v.version = w.version WHERE w.window_id = ?",
            [window_id],
        ).fetchone()
        return [str(p) for p in row or [] if p]

    def column_counts(self, window_id: int) -> list[ColumnCounts]:
        """Reference and window coarse counts (and nulls) of every column of a window."""
        rows = self.con.execute(
            "SELECT pc.name, pc.ref_coarse, pc.ref_nulls, wc.coarse, wc.nulls FROM windows w"
            " JOIN versions v ON v.model = w.model AND v.version = w.version"
            " JOIN profile_columns pc"
            " ON pc.profile_id IN (v.profile_id, v.prediction_profile_id)"
            " JOIN window_counts wc ON wc.window_id = w.window_id AND wc.name = pc.name"
            " WHERE w.window_id = ?",
            [window_id],
        ).fetchall()
        return [ColumnCounts(*r) for r in rows]

    def degraded_window(self, window_id: int) -> DegradedWindow:
        row = self.con.execute(
            "SELECT w.seq, w.start_us, w.end_us, w.rows, s.performance, s.share_drifted,"
            " s.dataset_drift, s.drifted_features FROM windows w"
            " LEFT JOIN summaries s USING (window_id) WHERE w.window_id = ?",
            [window_id],
        ).fetchone()
        if row is None:
            return DegradedWindow(None, None, None, None, None, None, None, [])
        seq, start_us, end_us, rows, performance, share, dataset, drifted = row
        return DegradedWindow(
            seq, start_us, end_us, rows, performance, share, dataset, list(drifted or [])
        )

    # -- dashboards (set-wise reads over many windows) --------------------------------------
    def latest_summaries(self) -> list[LatestSummary]:
        """Per model, its latest computed window (a champion window when there is one)."""
        rows = self.con.execute(
            "SELECT s.model, s.window_id, s.version, s.route, w.start_us, w.end_us, s.rows,"
            " s.n_features, s.n_drifted, s.share_drifted, s.dataset_drift, s.drifted_features"
            " FROM summaries s JOIN windows w USING (window_id)"
            " QUALIFY row_number() OVER (PARTITION BY s.model"
            "   ORDER BY (s.route = 'champion') DESC, w.end_us DESC, s.seq DESC) = 1"
        ).fetchall()
        return [LatestSummary(*r) for r in rows]

    def summary_streams(self, model: str) -> list[tuple[int, str, int]]:
        """``(version, route, computed windows)`` of a model, newest version first."""
        rows = self.con.execute(
            "SELECT version, route, count(*) FROM summaries WHERE model = ?"
            " GROUP BY version, route ORDER BY version DESC, route",
            [model],
        ).fetchall()
        return [(int(v), str(r), int(n)) for v, r, n in rows]

    def last_summaries(self, model: str, version: int, route: str, limit: int) -> list[GridWindow]:
        """The last ``limit`` computed windows of a stream, oldest first."""
        rows = self.con.execute(
            "SELECT * FROM (SELECT s.window_id, w.start_us, w.end_us, s.rows, s.share_drifted,"
            " s.share_threshold, s.dataset_drift, s.prediction, s.performance, s.labelled_rows,"
            " w.seq FROM summaries s JOIN windows w USING (window_id)"
            " WHERE s.model = ? AND s.version = ? AND s.route = ? ORDER BY w.seq DESC LIMIT ?)"
            " ORDER BY seq",
            [model, version, route, limit],
        ).fetchall()
        return [GridWindow(*r) for r in rows]

    def metric_results(self, model: str, metric: str, lo: int, hi: int) -> list[MetricResult]:
        """Every feature's ``metric`` (a ``results`` figure with a ``<metric>_threshold``)
        in the model's windows ``lo``..``hi``."""
        if metric not in _THRESHOLDED:
            raise ValueError(f"metric: expected one of {', '.join(_THRESHOLDED)}, got {metric!r}")
        rows = self.con.execute(
            f"SELECT window_id, name, kind, {metric}, {metric}_threshold, drifted FROM results"
            " WHERE role = 'feature' AND window_id BETWEEN ? AND ? AND model = ?",
            [lo, hi, model],
        ).fetchall()
        return [MetricResult(*r) for r in rows]

    def null_and_unseen(self, window_id: int) -> dict[str, tuple[float | None, float | None]]:
        """``name -> (null_rate, unseen_share)`` of a window's columns."""
        rows = self.con.execute(
            "SELECT name, null_rate, unseen_share FROM results WHERE window_id = ?", [window_id]
        ).fetchall()
        return {str(n): (a, b) for n, a, b in rows}


_THRESHOLDED = ("psi", "wasserstein", "js", "null_rate", "unseen_share", "ks_pvalue", "chi2_pvalue")
