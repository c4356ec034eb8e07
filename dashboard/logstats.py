"""Traffic figures from the prediction log (the data plane), computed with DuckDB.

The dashboard reads the same segments the monitor does
(``<logs>/predictions/model=<name>/date=<YYYY-MM-DD>/*.parquet``, ``registry.logschema``), so
its figures cover every gateway replica. Definitions, the same as ``mlgate rollout status``'s:

- a *request* is the ``request_id`` without a trailing ``/<digits>`` (row ``i`` of an ``n``-row
  request is logged as ``<request id>/<i>``);
- *errors*: requests with a server error (a row with ``status >= 500``); *client errors*: 4xx;
- *p50/p99*: percentiles (linear interpolation) of the request latency (``latency_us``, the
  same on every row of a request), all statuses included;
- *agreement* of a canary or shadow version: the share of its answered rows (status 200) whose
  prediction equals the champion's on the same ``request_id`` (a shadow reuses the primary's
  id); regressors agree within ``rel_tol * |champion| + abs_tol``.

Only the date partitions that can hold rows of the window are listed, and only the columns a
figure needs are read. No log store, or no segment yet, gives empty figures, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from registry.logschema import PREDICTIONS, ROUTE_CHAMPION

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class RouteFigures:
    """One ``(route, version)`` of a model over a window of the log."""

    route: str
    version: int
    requests: int
    errors: int
    client_errors: int
    p50_ms: float
    p99_ms: float
    rate_per_s: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "version": self.version,
            "requests": self.requests,
            "errors": self.errors,
            "client_errors": self.client_errors,
            "error_rate": self.error_rate,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "rate_per_s": self.rate_per_s,
        }


# A request is counted on its first row: the row of a one-row request, or row ``/0`` of a
# multi-row one. Every row of a request carries the request's status and latency
# (``registry.logschema``), so the first row has the request's figures and no grouping of
# rows into requests (a hash aggregate over every request id) is needed.
_REQUESTS = """
WITH requests AS (
    SELECT model, route, CAST(version AS BIGINT) AS version, status, latency_us {extra}
    FROM read_parquet($files, union_by_name = true, hive_partitioning = false)
    WHERE ts >= $since AND ts <= $until
      AND (strpos(request_id, '/') = 0 OR suffix(request_id, '/0'))
)
"""

_FIGURES = (
    _REQUESTS.format(extra="")
    + """
SELECT model, route, version, count(*),
       count(*) FILTER (WHERE status >= 500),
       count(*) FILTER (WHERE status >= 400 AND status < 500),
       quantile_cont(latency_us, 0.5), quantile_cont(latency_us, 0.99)
FROM requests GROUP BY model, route, version ORDER BY model, route, version
"""
)

_SERIES = (
    _REQUESTS.format(extra=", epoch_us(ts) // $bucket_us AS bucket")
    + """
SELECT bucket, route, count(*), count(*) FILTER (WHERE status >= 500),
       quantile_cont(latency_us, 0.99)
FROM requests GROUP BY bucket, route ORDER BY bucket, route
"""
)

_AGREEMENT = """
WITH rows AS (
    SELECT request_id, route, CAST(version AS BIGINT) AS version,
           CAST(prediction AS VARCHAR) AS pred_s, TRY_CAST(prediction AS DOUBLE) AS pred_d,
           epoch_us(ts) // $bucket_us AS bucket
    FROM read_parquet($files, union_by_name = true, hive_partitioning = false)
    WHERE ts >= $since AND ts <= $until AND status = 200
),
champ AS (
    SELECT request_id, any_value(pred_s) AS pred_s, any_value(pred_d) AS pred_d FROM rows
    WHERE version = $champion GROUP BY request_id
)
SELECT o.route, o.version, o.bucket, count(*),
       count(*) FILTER (WHERE CASE WHEN $numeric
           THEN abs(o.pred_d - c.pred_d) <= $rel_tol * abs(c.pred_d) + $abs_tol
           ELSE o.pred_s = c.pred_s END)
FROM rows o JOIN champ c USING (request_id)
WHERE o.route IN ('canary', 'shadow') AND o.version <> $champion
GROUP BY o.route, o.version, o.bucket ORDER BY o.route, o.version, o.bucket
"""


class LogReader:
    """Reads the prediction segments under ``logs_url`` (a path or an fsspec URL)."""

    def __init__(
        self,
        logs_url: str | None,
        *,
        storage_options: dict[str, Any] | None = None,
        threads: int = 2,
    ) -> None:
        self.logs_url = logs_url
        self.storage_options = storage_options or {}
        self.threads = threads

    def files(self, model: str | None, since: datetime) -> list[str]:
        """Segments of ``model`` (every model when None) dated on or after ``since``'s day."""
        if not self.logs_url:
            return []
        fs, root = fsspec.core.url_to_fs(self.logs_url, **self.storage_options)
        pattern = f"{str(root).rstrip('/')}/{PREDICTIONS}/model={model or '*'}/date=*/*.parquet"
        first_day = since.astimezone(UTC).date().isoformat()
        try:
            found = fs.glob(pattern)
        except FileNotFoundError:
            return []
        paths = []
        for path in sorted(str(p) for p in found):
            day = path.rsplit("/date=", 1)[-1].split("/", 1)[0]
            if day >= first_day and not path.rsplit("/", 1)[-1].startswith("."):
                paths.append(path)
        if not isinstance(fs, LocalFileSystem):
            protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
            paths = [p if "://" in p else f"{protocol}://{p}" for p in paths]
        return paths

    def _connect(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        con = duckdb.connect(config={"threads": self.threads})
        if self.logs_url:
            fs, _ = fsspec.core.url_to_fs(self.logs_url, **self.storage_options)
            if not isinstance(fs, LocalFileSystem):
                con.register_filesystem(fs)
        return con

    def route_figures(
        self, *, window_s: float, now: datetime | None = None, model: str | None = None
    ) -> dict[str, list[RouteFigures]]:
        """Per model, figures per ``(route, version)`` over the last ``window_s`` seconds."""
        until = (now or datetime.now(UTC)).astimezone(UTC)
        since = until - timedelta(seconds=window_s)
        files = self.files(model, since)
        out: dict[str, list[RouteFigures]] = {}
        if not files:
            return out
        con = self._connect()
        try:
            rows = con.execute(_FIGURES, {"files": files, "since": since, "until": until})
            for name, route, version, n, errors, client, p50, p99 in rows.fetchall():
                out.setdefault(str(name), []).append(
                    RouteFigures(
                        route=str(route),
                        version=int(version),
                        requests=int(n),
                        errors=int(errors),
                        client_errors=int(client),
                        p50_ms=float(p50 or 0.0) / 1000.0,
                        p99_ms=float(p99 or 0.0) / 1000.0,
                        rate_per_s=int(n) / window_s,
                    )
                )
        finally:
            con.close()
        return out

    def series(
        self, model: str, *, window_s: float, buckets: int, now: datetime | None = None
    ) -> dict[str, Any]:
        """Requests, errors and p99 per route in ``buckets`` equal slices of the window."""
        until = (now or datetime.now(UTC)).astimezone(UTC)
        since = until - timedelta(seconds=window_s)
        bucket_us = max(1, int(window_s * 1e6 / buckets))
        first = int(since.timestamp() * 1e6) // bucket_us
        doc: dict[str, Any] = {
            "since": since.isoformat(timespec="seconds"),
            "until": until.isoformat(timespec="seconds"),
            "bucket_s": bucket_us / 1e6,
            "starts": [(first + i) * bucket_us / 1e6 for i in range(buckets + 1)],
            "routes": {},
        }
        files = self.files(model, since)
        if not files:
            return doc
        con = self._connect()
        try:
            params = {"files": files, "since": since, "until": until, "bucket_us": bucket_us}
            for bucket, route, n, errors, p99 in con.execute(_SERIES, params).fetchall():
                series = doc["routes"].setdefault(
                    str(route),
                    {
                        "requests": [0] * (buckets + 1),
                        "errors": [0] * (buckets + 1),
                        "p99_ms": [None] * (buckets + 1),
                    },
                )
                i = int(bucket) - first
                if 0 <= i <= buckets:
                    series["requests"][i] = int(n)
                    series["errors"][i] = int(errors)
                    series["p99_ms"][i] = float(p99 or 0.0) / 1000.0
        finally:
            con.close()
        return doc

    def agreement(
        self,
        model: str,
        *,
        champion: int | None,
        numeric: bool,
        window_s: float,
        buckets: int,
        now: datetime | None = None,
        rel_tol: float = 0.05,
        abs_tol: float = 1e-9,
    ) -> list[dict[str, Any]]:
        """Per canary/shadow version: rows compared with the champion, the share that agree,
        and the same per bucket of the window."""
        until = (now or datetime.now(UTC)).astimezone(UTC)
        since = until - timedelta(seconds=window_s)
        files = self.files(model, since) if champion is not None else []
        if not files:
            return []
        bucket_us = max(1, int(window_s * 1e6 / buckets))
        first = int(since.timestamp() * 1e6) // bucket_us
        found: dict[tuple[str, int], dict[str, Any]] = {}
        con = self._connect()
        try:
            params = {
                "files": files,
                "since": since,
                "until": until,
                "bucket_us": bucket_us,
                "champion": champion,
                "numeric": numeric,
                "rel_tol": rel_tol,
                "abs_tol": abs_tol,
            }
            for route, version, bucket, n, agreed in con.execute(_AGREEMENT, params).fetchall():
                item = found.setdefault(
                    (str(route), int(version)),
                    {
                        "route": str(route),
                        "version": int(version),
                        "compared": 0,
                        "agreed": 0,
                        "series": [None] * (buckets + 1),
                    },
                )
                item["compared"] += int(n)
                item["agreed"] += int(agreed)
                i = int(bucket) - first
                if 0 <= i <= buckets and n:
                    item["series"][i] = int(agreed) / int(n)
        finally:
            con.close()
        out = []
        for item in found.values():
            item["agreement"] = item["agreed"] / item["compared"] if item["compared"] else None
            out.append(item)
        return out


def champion_first(figures: list[RouteFigures]) -> list[RouteFigures]:
    """Champion rows first, then canary, shadow and explicit, each by version.

    >>> f = RouteFigures("shadow", 2, 1, 0, 0, 1.0, 1.0, 0.1)
    >>> g = RouteFigures(ROUTE_CHAMPION, 1, 1, 0, 0, 1.0, 1.0, 0.1)
    >>> [x.route for x in champion_first([f, g])]
    ['champion', 'shadow']
    """
    order = {ROUTE_CHAMPION: 0, "canary": 1, "shadow": 2}
    return sorted(figures, key=lambda f: (order.get(f.route, 9), f.version))
