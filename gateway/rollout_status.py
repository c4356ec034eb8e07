"""Per-route figures of a rollout, computed with DuckDB over the prediction log.

Reads ``<logs>/predictions/model=<name>/date=*/*.parquet`` (a local path, ``file://`` or any
fsspec URL) for a recent window, so the figures cover every gateway replica. For each
``(route, version)`` seen in the window or routed now:

- ``requests``: distinct requests; ``rows``: logged rows. Row ``i`` of an ``n``-row request is
  logged as ``<request id>/<i>`` (``registry.logschema``), so a request is the ``request_id``
  without a trailing ``/<digits>``;
- ``errors`` / ``error_rate``: requests with a server error (any row ``status >= 500``);
  ``client_errors``: requests refused as bad input (4xx);
- ``p50_ms`` / ``p99_ms``: percentiles (linear interpolation) of the request latency
  (``max(latency_us)`` over the request's rows), all statuses included;
- ``agreement``: the share of *compared* rows on which this version and the champion agree,
  ``compared``: how many rows were compared.

Agreement, precisely: a row of version ``V`` (route ``canary`` or ``shadow``) is compared with
the champion's row for the same input row, i.e. the row of the champion version with the same
``request_id`` (which names the row: ``<request id>/<i>``), both with status 200; should a log
repeat one ``request_id`` over several rows, they are paired by position in log order.
Shadows share the primary's ``request_id``, so a shadow's rows are comparable whenever the
champion answered the request. A canary's own rows are comparable only where the champion also
answered the same id (a client sending one request id to both, e.g. with an explicit version);
to measure a canary's agreement on live traffic, shadow the canary's version too: the copies
of champion-routed requests show on its ``shadow`` line.
Classifiers agree when the predicted labels are equal. Regressors agree when
``|v - c| <= rel_tol * |c| + abs_tol`` (defaults 5 % and 1e-9); their ``mean_abs_diff`` is
reported too. The champion version is the route's champion when
given, else the most frequent version on ``champion`` rows in the window.

Empty or missing logs (or no log store, ``logs=None``) give zeros, never an error. A segment
that cannot be read (truncated, not Parquet, a column of the wrong type) is left out and listed
in ``bad_segments`` with the reason; the figures come from the others.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import fsspec
import msgspec
from fsspec.implementations.local import LocalFileSystem

from registry.gateways import gateway_states
from registry.logschema import PREDICTIONS, ROUTE_CANARY, ROUTE_CHAMPION, ROUTE_SHADOW
from registry.rollout import known

if TYPE_CHECKING:
    from registry import Registry
    from registry.model import Route

DEFAULT_WINDOW_S = 15 * 60.0
_ROUTE_ORDER = {ROUTE_CHAMPION: 0, ROUTE_CANARY: 1, ROUTE_SHADOW: 2}


class RouteStats(msgspec.Struct, frozen=True):
    route: str
    version: int
    requests: int = 0
    rows: int = 0
    errors: int = 0
    client_errors: int = 0
    error_rate: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    compared: int = 0
    agreement: float | None = None  # None when nothing could be compared
    mean_abs_diff: float | None = None  # regressors only


class BadSegment(msgspec.Struct, frozen=True):
    """A segment left out of the figures, and why."""

    path: str
    reason: str


class RolloutStats(msgspec.Struct, frozen=True):
    model: str
    since: str
    until: str
    window_s: float
    champion: int | None
    routes: list[RouteStats]
    segments: int = 0  # Parquet files read
    bad_segments: list[BadSegment] = msgspec.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _segments(
    logs: str | None, model: str, since: datetime, storage_options: dict[str, Any] | None
) -> tuple[fsspec.AbstractFileSystem | None, list[str]]:
    """The model's segment files whose date partition can hold rows newer than ``since``."""
    if not logs:
        return None, []  # no log store configured: nothing to read
    fs, root = fsspec.core.url_to_fs(logs, **(storage_options or {}))
    base = f"{str(root).rstrip('/')}/{PREDICTIONS}/model={model}"
    first_day = since.astimezone(UTC).date().isoformat()
    try:
        found = fs.glob(f"{base}/date=*/*.parquet")
    except FileNotFoundError:
        return fs, []
    paths = []
    for path in sorted(str(p) for p in found):
        day = path.rsplit("/date=", 1)[-1].split("/", 1)[0]
        if day >= first_day and not path.rsplit("/", 1)[-1].startswith("."):
            paths.append(path)
    if not isinstance(fs, LocalFileSystem):
        protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
        paths = [p if "://" in p else f"{protocol}://{p}" for p in paths]
    return fs, paths


_QUERY = """
WITH raw AS (
    SELECT request_id, regexp_replace(request_id, '/[0-9]+$', '') AS request,
           CAST(version AS BIGINT) AS version, route, status, latency_us,
           CAST(prediction AS VARCHAR) AS pred_s, TRY_CAST(prediction AS DOUBLE) AS pred_d,
           filename, file_row_number
    FROM read_parquet($files, union_by_name = true, filename = true,
                      file_row_number = true, hive_partitioning = false)
    WHERE ts >= $since AND ts <= $until
),
rows AS (
    SELECT *, row_number() OVER (PARTITION BY request_id, route, version
                                 ORDER BY filename, file_row_number) AS pos
    FROM raw
),
requests AS (
    SELECT route, version, request, max(status) AS status, max(latency_us) AS latency_us,
           count(*) AS n
    FROM rows GROUP BY route, version, request
),
per_route AS (
    SELECT route, version, count(*) AS requests, sum(n) AS nrows,
           count(*) FILTER (WHERE status >= 500) AS errors,
           count(*) FILTER (WHERE status >= 400 AND status < 500) AS client_errors,
           quantile_cont(latency_us, 0.5) AS p50, quantile_cont(latency_us, 0.99) AS p99
    FROM requests GROUP BY route, version
),
champ AS (
    SELECT request_id, pos, pred_s, pred_d FROM rows
    WHERE version = $champion AND status = 200
    QUALIFY row_number() OVER (PARTITION BY request_id, pos
                               ORDER BY route <> 'champion', filename, file_row_number) = 1
),
pairs AS (
    SELECT o.route, o.version,
           count(*) AS compared,
           count(*) FILTER (WHERE CASE WHEN $numeric
               THEN abs(o.pred_d - c.pred_d) <= $rel_tol * abs(c.pred_d) + $abs_tol
               ELSE o.pred_s = c.pred_s END) AS agreed,
           avg(abs(o.pred_d - c.pred_d)) AS mad
    FROM rows o JOIN champ c USING (request_id, pos)
    WHERE o.route IN ('canary', 'shadow') AND o.status = 200 AND o.version <> $champion
    GROUP BY o.route, o.version
)
SELECT p.route, p.version, p.requests, p.nrows, p.errors, p.client_errors, p.p50, p.p99,
       coalesce(a.compared, 0), a.agreed, a.mad
FROM per_route p LEFT JOIN pairs a USING (route, version)
"""

_CHAMPION_QUERY = """
SELECT CAST(version AS BIGINT) FROM read_parquet($files, union_by_name = true,
                                                 hive_partitioning = false)
WHERE route = 'champion' AND ts >= $since AND ts <= $until
GROUP BY 1 ORDER BY count(*) DESC, 1 DESC LIMIT 1
"""

_NUMERIC_QUERY = """
SELECT typeof(prediction) IN ('DOUBLE', 'FLOAT', 'BIGINT', 'INTEGER')
FROM read_parquet($files, union_by_name = true, hive_partitioning = false) LIMIT 1
"""


def rollout_stats(
    logs: str | None,
    model: str,
    *,
    route: Route | None = None,
    window_s: float = DEFAULT_WINDOW_S,
    now: datetime | None = None,
    storage_options: dict[str, Any] | None = None,
    rel_tol: float = 0.05,
    abs_tol: float = 1e-9,
) -> RolloutStats:
    """Figures per ``(route, version)`` of ``model`` over the last ``window_s`` seconds.

    ``route``, when given, names the champion (the agreement reference) and makes every routed
    version appear, with zeros when it has no rows yet.
    """
    until = (now or datetime.now(UTC)).astimezone(UTC)
    since = until - timedelta(seconds=window_s)
    fs, files = _segments(logs, model, since, storage_options)
    champion = route.champion if route is not None else None
    found: dict[tuple[str, int], RouteStats] = {}
    bad: list[BadSegment] = []
    if fs is not None and files:
        import duckdb  # imported on use: the rollout actions of the CLI never need it

        bad = [b for b in (_check_segment(fs, path) for path in files) if b is not None]
        files = [f for f in files if f not in {b.path for b in bad}]
        con = duckdb.connect()
        try:
            if not isinstance(fs, LocalFileSystem):
                con.register_filesystem(fs)
            try:
                champion, rows, numeric = _query(con, files, since, until, champion,
                                                 rel_tol, abs_tol)  # fmt: skip
            except duckdb.Error:
                # a footer that reads but pages that do not: find the culprits, then again
                broken = [b for b in (_scan_segment(con, f) for f in files) if b is not None]
                if not broken:
                    raise
                bad += broken
                files = [f for f in files if f not in {b.path for b in broken}]
                champion, rows, numeric = _query(con, files, since, until, champion,
                                                 rel_tol, abs_tol)  # fmt: skip
            for r in rows:
                stats = _route_stats(r, numeric=numeric)
                found[(stats.route, stats.version)] = stats
        finally:
            con.close()
    for key in _routed(route):
        found.setdefault(key, RouteStats(route=key[0], version=key[1]))
    routes = sorted(found.values(), key=lambda s: (_ROUTE_ORDER.get(s.route, 9), s.version))
    return RolloutStats(
        model=model,
        since=_iso(since),
        until=_iso(until),
        window_s=float(window_s),
        champion=champion,
        routes=routes,
        segments=len(files),
        bad_segments=bad,
    )


# the columns the figures read, and the Arrow types each may have
_NEEDED = {
    "ts": "timestamp",
    "request_id": "string",
    "route": "string",
    "version": "integer",
    "status": "integer",
    "latency_us": "integer",
}


def _check_segment(fs: fsspec.AbstractFileSystem, path: str) -> BadSegment | None:
    """Why a segment cannot be used (unreadable footer, missing or mistyped column), or None."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with fs.open(path, "rb") as f:
            schema = pq.read_schema(f)
    except Exception as exc:  # noqa: BLE001 - anything unreadable is reported, not raised
        return BadSegment(path, f"not a readable Parquet file: {type(exc).__name__}: {exc}")
    checks = {
        "timestamp": pa.types.is_timestamp,
        "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
        "integer": pa.types.is_integer,
    }
    problems = []
    for name, kind in _NEEDED.items():
        index = schema.get_field_index(name)
        if index < 0:
            problems.append(f"no column {name!r}")
        elif not checks[kind](schema.field(index).type):
            problems.append(f"column {name!r}: expected {kind}, got {schema.field(index).type}")
    if schema.get_field_index("prediction") < 0:
        problems.append("no column 'prediction'")
    return BadSegment(path, "; ".join(problems)) if problems else None


def _scan_segment(con: Any, path: str) -> BadSegment | None:
    """Decode every column the figures read from one segment; the error if that fails."""
    import duckdb

    try:
        con.execute(
            "SELECT count(*), min(ts), max(length(request_id)), max(length(route)), "
            "max(version), max(status), max(latency_us), max(CAST(prediction AS VARCHAR)) "
            "FROM read_parquet($f)",
            {"f": [path]},
        ).fetchall()
    except duckdb.Error as exc:
        return BadSegment(path, f"unreadable rows: {exc}")
    return None


def _query(
    con: Any,
    files: list[str],
    since: datetime,
    until: datetime,
    champion: int | None,
    rel_tol: float,
    abs_tol: float,
) -> tuple[int | None, list[tuple[Any, ...]], bool]:
    """(champion, one row per route and version, whether predictions are numbers)."""
    if not files:
        return champion, [], False
    params: dict[str, Any] = {"files": files, "since": since, "until": until}
    if champion is None:
        row = con.execute(_CHAMPION_QUERY, params).fetchone()
        champion = int(row[0]) if row else None
    found = con.execute(_NUMERIC_QUERY, {"files": files}).fetchone()
    numeric = bool(found and found[0])
    params.update(
        champion=champion if champion is not None else -1,
        numeric=numeric,
        rel_tol=rel_tol,
        abs_tol=abs_tol,
    )
    return champion, con.execute(_QUERY, params).fetchall(), numeric


def _route_stats(r: tuple[Any, ...], *, numeric: bool) -> RouteStats:
    route, version, requests, nrows, errors, client_errors, p50, p99, compared, agreed, mad = r
    return RouteStats(
        route=str(route),
        version=int(version),
        requests=int(requests),
        rows=int(nrows),
        errors=int(errors),
        client_errors=int(client_errors),
        error_rate=errors / requests if requests else 0.0,
        p50_ms=float(p50 or 0.0) / 1000.0,
        p99_ms=float(p99 or 0.0) / 1000.0,
        compared=int(compared),
        agreement=(agreed / compared) if compared else None,
        mean_abs_diff=float(mad) if numeric and mad is not None and compared else None,
    )


def _routed(route: Route | None) -> list[tuple[str, int]]:
    if route is None:
        return []
    keys: list[tuple[str, int]] = []
    if route.champion is not None:
        keys.append((ROUTE_CHAMPION, route.champion))
    if route.canary is not None:
        keys.append((ROUTE_CANARY, route.canary.version))
    keys.extend((ROUTE_SHADOW, s.version) for s in route.shadows)
    return keys


def describe(route: Route) -> str:
    """One line: champion, canary, shadows and generation.

    >>> from registry.model import Route
    >>> describe(Route(champion=1, generation=3))
    'champion v1, no canary, no shadow, generation 3'
    """
    return f"{route.describe()}, generation {route.generation}"


def collect_status(
    reg: Registry,
    name: str,
    *,
    logs: str | None,
    window_s: float = DEFAULT_WINDOW_S,
    recent_events: int = 5,
) -> dict[str, Any]:
    """Everything ``status`` shows, as plain JSON-able data (the admin API returns it too).

    ``events`` holds the last ``recent_events`` route changes, so that a rollout withdrawn
    because a gateway could not load the version still says why once the route moved on.
    """
    gateways = gateway_states(reg, name)  # one snapshot for the list and for "failed"
    k = known(reg, name, states=gateways)  # raises InvalidRoute for an unknown model
    route = reg.route(name)
    stats = rollout_stats(logs, name, route=route, window_s=window_s)
    changes = [e for e in reg.events(name) if e.generation is not None][-recent_events:]
    return {
        "model": name,
        "route": msgspec.to_builtins(route),
        "summary": describe(route),
        "stats": stats.to_dict(),
        "gateways": [{**msgspec.to_builtins(g), "age_s": round(g.age_s(), 1)} for g in gateways],
        "failed": {str(v): reason for v, reason in sorted(k.failed.items())},
        "events": [msgspec.to_builtins(e) for e in changes],
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
