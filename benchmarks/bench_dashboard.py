"""Dashboard page-time benchmark on a large installation (the issue's size by default).

The installation (built once, cached under ``benchmarks/.work/dashboard``, ~12 minutes on
the loaded 2-core machine): ``--models`` models x ``--versions`` versions each (a 32-feature
logistic regression, lineage with metrics and parent), each with a 10 % canary, a shadow and a
trainer-run event; ``--rows`` prediction-log rows in the last 4 minutes, the first model's
enough for ``--windows`` champion windows of ``--window-rows`` rows (3 features drift in
its second half), the rest spread over the other models. The first model's versions 1 and
``--versions`` go through ``Registry.register`` and its log through a real monitor pass; the
other versions are written as ``register`` commits them (artifact, then manifest) and the
other models get copies of the first model's computed windows (``INSERT ... SELECT`` into
the monitor's tables), which keeps the set-up minutes, not hours.

Before measuring, the log's rows are moved forward in time to the last 4 minutes again (the
installation is reused across runs). Measured, against the real ``mlgate ui`` process
(``--code``: the checkout it runs, to compare with an older one) with its defaults and
``max_windows = 1000``:

1. over HTTP, right after the start: per page and JSON endpoint the first request, the page
   complete (its ``?fragment=1`` too when the first answer was the frame), then ``--repeat``
   more 0.5 s apart (warm: a page refreshing);
2. in headless Chromium, after a fresh start: each page loaded at once (cold), then again
   (warm): the response's first byte, the first contentful paint and when ``<main>`` holds
   the figures; a one-line ``data:`` page first gives the browser's own floor at the time.

    .venv/bin/python -m benchmarks.bench_dashboard [--models 100 --versions 50 --windows 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "dashboard"
FEATURES = 32
DRIFTED = (4, 17, 29)


def _names() -> list[str]:
    return [f"f{j:02d}" for j in range(FEATURES)]


def _register_direct(reg: Any, template: Any, artifact: bytes, name: str, v: int) -> None:
    """Write version ``v`` of ``name`` as ``Registry.register`` commits it (artifact, then the
    manifest as the commit point), from an already registered version's manifest: the
    encoding and hashing of 5,000 identical estimators would only make the set-up slow."""
    import msgspec

    from registry.model import Event
    from registry.registry import utc_now

    lineage = msgspec.structs.replace(
        template.lineage,
        metrics={"accuracy": 0.8 + 0.001 * v, "f1": 0.78 + 0.001 * v},
        parent_version=v - 1 if v > 1 else None,
        trigger="drift" if v > 1 else "manual",
    )
    mv = msgspec.structs.replace(
        template, name=name, version=v, created_at=utc_now(), lineage=lineage,
        reference=None, reference_sha256=None, reference_predictions=None,
        reference_predictions_sha256=None,
    )  # fmt: skip
    base = f"models/{name}/versions/{v}"
    reg.store.write(f"{base}/{mv.artifact}", artifact)
    reg.store.write(f"{base}/manifest.json", msgspec.json.format(msgspec.json.encode(mv), indent=2))
    event = Event(
        ts=utc_now(),
        model=name,
        kind="register",
        version=v,
        detail={"flavor": mv.flavor, "sha256": mv.sha256, "trigger": lineage.trigger},
    )
    reg.store.append(f"models/{name}/events.jsonl", msgspec.json.encode(event) + b"\n")


def _log_frame(
    rng: Any, est: Any, name: str, n: int, versions: int, start_us: int, span_us: int
) -> Any:
    """``n`` prediction-log rows of ``name`` (champion v1, 10 % canary v``versions``) spread
    over ``span_us`` from ``start_us``; the drifted features shift in the second half."""
    import numpy as np
    import polars as pl

    from registry import logschema

    x = rng.normal(size=(n, FEATURES))
    x[n // 2 :, list(DRIFTED)] += 1.0
    proba = est.predict_proba(x.astype(np.float32))
    route = np.where(rng.random(n) < 0.1, "canary", "champion")
    version = np.where(route == "canary", versions, 1)
    cols: dict[str, Any] = {
        "ts": pl.Series(start_us + (np.arange(n) * (span_us // max(n, 1)))).cast(
            pl.Datetime("us", "UTC")
        ),
        "request_id": [f"{name}-{i}" for i in range(n)],
        "model": [name] * n,
        "version": pl.Series(version, dtype=pl.Int64),
        "route": route.tolist(),
    }
    for j, f in enumerate(_names()):
        cols[logschema.feature_column(f)] = x[:, j]
    cols["prediction"] = [str(c) for c in proba.argmax(axis=1)]
    cols["proba_0"], cols["proba_1"] = proba[:, 0], proba[:, 1]
    cols["latency_us"] = pl.Series(rng.integers(300, 3000, n), dtype=pl.Int64)
    cols["batch_rows"] = pl.Series(np.ones(n, dtype=np.int64))
    cols["status"] = pl.Series(np.where(rng.random(n) < 0.01, 500, 200), dtype=pl.Int64)
    return pl.DataFrame(cols)


def _write_log(logs: Path, name: str, frame: Any, start_us: int, seq: int) -> int:
    from registry import logschema

    day = datetime.fromtimestamp(start_us / 1e6, UTC).strftime("%Y-%m-%d")
    folder = Path(logschema.segment_dir(str(logs), logschema.PREDICTIONS, name, day))
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(0, frame.height, 50_000):  # gateway-sized segments
        seq += 1
        frame[k : k + 50_000].write_parquet(folder / f"w1-{seq:06d}.parquet")
    return seq


# the monitor tables the dashboard reads, copied from the first model to the others
_COPIED = ("windows", "summaries", "results")


def _replicate_monitor(db: Path, first: str, others: list[str]) -> None:
    """Give every other model the first model's computed windows (same versions and routes),
    as if the monitor had computed them: one ``INSERT ... SELECT`` per table and model."""
    import duckdb

    con = duckdb.connect(str(db))
    try:
        found = con.execute("SELECT max(window_id) + 1 FROM windows").fetchone()
        span = int(found[0]) if found else 1
        con.execute("BEGIN")
        for i, name in enumerate(others, start=1):
            offset = i * int(span)
            for table in _COPIED:
                columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
                renamed = {"window_id": f"window_id + {offset}", "model": "$name"}
                select = ", ".join(renamed.get(c, c) for c in columns)
                con.execute(
                    f"INSERT INTO {table} SELECT {select} FROM {table} WHERE model = $first",
                    {"name": name, "first": first},
                )
            # the distributions of each stream's last windows (the ones the page opens on)
            con.execute(
                f"INSERT INTO window_counts SELECT c.window_id + {offset}, c.* EXCLUDE (window_id)"
                " FROM window_counts c JOIN windows w USING (window_id)"
                " WHERE w.model = $first AND w.seq >= (SELECT max(seq) - 2 FROM windows x"
                " WHERE x.model = w.model AND x.version = w.version AND x.route = w.route)",
                {"first": first},
            )
            con.execute(
                "INSERT INTO versions SELECT * REPLACE ($name AS model) FROM versions"
                " WHERE model = $first",
                {"name": name, "first": first},
            )
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    finally:
        con.close()


def build(
    home: Path, *, models: int, versions: int, rows: int, windows: int, window_rows: int
) -> None:
    """Registry, log store and monitor state under ``home``.

    The first model's versions 1 and ``versions`` (champion and canary) are registered with
    ``Registry.register`` (with their reference data) and its log runs through a real monitor
    pass (``windows`` champion windows of ``window_rows`` rows); every other version is
    written as ``register`` commits it, and the other models get copies of the first
    model's computed windows. The other models' log rows are written after the monitor pass.
    """
    import msgspec
    import numpy as np
    import polars as pl
    from sklearn.linear_model import LogisticRegression

    from monitor import Monitor, MonitorConfig
    from registry import Registry, rollout

    rng = np.random.default_rng(0)
    reg = Registry("file://" + str(home / "registry"))
    x_ref = rng.normal(size=(2000, FEATURES))
    y = (x_ref[:, 0] + x_ref[:, 1] > 0).astype(int)
    ref = pl.DataFrame({n: x_ref[:, j] for j, n in enumerate(_names())})
    est = LogisticRegression().fit(x_ref.astype(np.float32), y)
    names = [f"model-{i:03d}" for i in range(models)]
    t0 = time.perf_counter()
    template = reg.register(names[0], est, reference=ref, metrics={"accuracy": 0.801, "f1": 0.781})
    artifact = reg.artifact_bytes(template)
    for i, name in enumerate(names):
        for v in range(1 if i else 2, versions + (0 if i == 0 else 1)):
            _register_direct(reg, template, artifact, name, v)
        if i == 0:
            reg.register(
                name, est, reference=ref, parent_version=versions - 1, trigger="drift",
                metrics={"accuracy": 0.8 + 0.001 * versions, "f1": 0.78 + 0.001 * versions},
            )  # fmt: skip
        else:
            reg.update_route(
                name,
                lambda r: msgspec.structs.replace(r, champion=1),
                kind="promote",
                detail={"version": 1, "reason": "first version"},
            )
        rollout.start_rollout(reg, name, versions, weight=10.0, steps=[10.0, 50.0, 100.0])
        rollout.set_shadow(reg, name, versions - 1)
        reg.record_event(name, "trainer.run.finished", version=versions, detail={"run": "r1"})
    print(f"registered {models * versions} versions in {time.perf_counter() - t0:.0f} s")

    now_us = int(datetime.now(UTC).timestamp() * 1e6)
    start, span = now_us - 240_000_000, 200_000_000
    logs = home / "logs"
    # the first model's champion (90 % of its rows) fills ``windows`` windows
    first_rows = int(windows * window_rows / 0.9) + window_rows
    seq = _write_log(logs, names[0], _log_frame(rng, est, names[0], first_rows, versions,
                                                start, span), start, 0)  # fmt: skip
    t0 = time.perf_counter()
    config = MonitorConfig(window_rows=window_rows, min_rows=min(window_rows, 200))
    monitor = Monitor(reg, str(logs), db=home / "monitor.duckdb", config=config)
    try:
        monitor.run_once()
    finally:
        monitor.close()
    print(f"monitor pass over {first_rows} rows in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    _replicate_monitor(home / "monitor.duckdb", names[0], names[1:])
    print(f"monitor state copied to {models - 1} models in {time.perf_counter() - t0:.0f} s")
    rest = max(rows - first_rows, 0) // max(models - 1, 1)
    for name in names[1:]:
        seq = _write_log(logs, name, _log_frame(rng, est, name, rest, versions, start, span),
                         start, seq)  # fmt: skip
    (home / "built.json").write_text(
        json.dumps({"models": models, "versions": versions, "rows": rows, "at": now_us})
    )


def _move_log_to_now(home: Path) -> None:
    """Shift every log row's time by the installation's age, so the log is again the last
    4 minutes' traffic when the measurement starts (each segment rewritten, temp + rename)."""
    import polars as pl

    built = json.loads((home / "built.json").read_text())
    now_us = int(datetime.now(UTC).timestamp() * 1e6)
    shift = now_us - int(built["at"])
    t0 = time.perf_counter()
    for path in sorted((home / "logs").rglob("*.parquet")):
        frame = pl.read_parquet(path)
        ts = pl.col("ts").cast(pl.Int64) + shift
        frame = frame.with_columns(ts.cast(pl.Datetime("us", "UTC")).alias("ts"))
        tmp = path.with_name("." + path.name)
        frame.write_parquet(tmp)
        tmp.replace(path)
    (home / "built.json").write_text(json.dumps({**built, "at": now_us}))
    print(f"log moved {shift / 1e6:.0f} s forward in {time.perf_counter() - t0:.0f} s")


def _serve(home: Path, port: int, code: Path = ROOT) -> subprocess.Popen[bytes]:
    """``mlgate ui`` of the checkout ``code`` as a user starts it (``python -P``: its cwd
    holds ``registry/``)."""
    config = home / "mlgate.toml"
    config.write_text("[dashboard]\nmax_windows = 1000\ntraffic_window_s = 900.0\n")
    return subprocess.Popen(
        [sys.executable, "-P", "-c", "from mlgate.cli import main; main()", "ui",
         "--home", str(home), "--port", str(port)],
        cwd=home, env={**os.environ, "PYTHONPATH": str(code)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _wait_up(proc: subprocess.Popen[bytes], base: str) -> float:
    """Seconds until ``mlgate ui`` answers (static files need no figure)."""
    import httpx

    t0 = time.perf_counter()
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/static/app.js").status_code == 200:
                return time.perf_counter() - t0
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("mlgate ui did not start")
        time.sleep(0.05)


def _time(url: str, repeat: int) -> dict[str, float]:
    """The first request (cold: the first after start) and the next ``repeat`` (warm: a
    page refreshing, 0.5 s apart). A page whose first answer is its frame (figures not
    computed yet) is complete once its ``?fragment=1`` answers: ``complete_ms``."""
    import httpx

    with httpx.Client(timeout=120) as client:
        t0 = time.perf_counter()
        r = client.get(url)
        cold = time.perf_counter() - t0
        r.raise_for_status()
        complete = cold
        if "<main id='main' data-pending=1>" in r.text:
            r = client.get(url, params={"fragment": 1})
            r.raise_for_status()
            complete = time.perf_counter() - t0
        times = []
        for _ in range(repeat):
            time.sleep(0.5)
            t0 = time.perf_counter()
            r = client.get(url)
            times.append(time.perf_counter() - t0)
            r.raise_for_status()
    return {"cold_ms": 1000 * cold, "complete_ms": 1000 * complete,
            "median_ms": 1000 * statistics.median(times), "max_ms": 1000 * max(times),
            "bytes": len(r.content)}  # fmt: skip


_PAINT = (
    "performance.getEntriesByName('first-contentful-paint')[0]?.startTime"
    " ?? performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"
)
_FILLED = f"performance.getEntriesByName('mlgate-filled')[0]?.startTime ?? ({_PAINT})"


_FIRST_BYTE = "performance.getEntriesByType('navigation')[0]?.responseStart ?? 0"
Paint = tuple[float, float, float]


def _paint(browser: Any, urls: dict[str, str]) -> dict[str, Paint]:
    """Per page: the first contentful paint, when ``<main>`` holds the figures (the same
    when the page came complete) and the response's first byte, in ms from the navigation's
    start."""
    out = {}
    for page, url in urls.items():
        browser.open(url)
        browser.wait_js("!document.getElementById('main')?.dataset.pending", timeout_s=120)
        out[page] = (
            float(browser.js(_PAINT)),
            float(browser.js(_FILLED)),
            float(browser.js(_FIRST_BYTE)),
        )
        assert browser.errors == [], browser.errors
    return out


def _pages(base: str, first: str) -> dict[str, str]:
    drift = f"{base}/models/{first}/drift?version=1&route=champion"
    return {
        "Models": f"{base}/",
        "Model": f"{base}/models/{first}",
        "Drift": drift,
        "Events": f"{base}/events",
        "api/models": f"{base}/api/models",
        "api/model": f"{base}/api/models/{first}",
        "api/drift": drift.replace("/models/", "/api/models/", 1),
        "api/events": f"{base}/api/events",
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", type=int, default=100)
    p.add_argument("--versions", type=int, default=50)
    p.add_argument("--windows", type=int, default=1000)
    p.add_argument("--window-rows", type=int, default=500)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--port", type=int, default=8097)
    p.add_argument("--rebuild", action="store_true")
    p.add_argument(
        "--code",
        type=Path,
        default=ROOT,
        help="checkout whose `mlgate ui` is measured (an older one, to compare)",
    )
    args = p.parse_args()
    home = WORK / f"{args.models}x{args.versions}x{args.windows}x{args.rows}"
    if args.rebuild or not (home / "built.json").exists():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        build(home, models=args.models, versions=args.versions, rows=args.rows,
              windows=args.windows, window_rows=args.window_rows)  # fmt: skip
    import httpx

    from tests.dashboard.cdp import Browser, chromium_path

    _move_log_to_now(home)
    base = f"http://127.0.0.1:{args.port}"
    urls = _pages(base, "model-000")
    # 1. HTTP: every page and endpoint, the first request right after start, then warm
    proc = _serve(home, args.port, args.code)
    try:
        up_s = _wait_up(proc, base)
        results = {name: _time(url, args.repeat) for name, url in urls.items()}
        drift = httpx.get(urls["api/drift"], timeout=120).json()
        windows = len(drift["grid"]["windows"]) if drift.get("grid") else 0
        total = (drift.get("grid") or {}).get("total_windows", windows)
    finally:
        proc.terminate()
        proc.wait(30)
    # 2. the browser: each page loaded right after a fresh start (cold), then again (warm)
    cold: dict[str, Paint] = {}
    warm: dict[str, Paint] = {}
    if chromium_path() is not None:
        with tempfile.TemporaryDirectory() as profile:
            browser = Browser(Path(profile))
            proc = _serve(home, args.port, args.code)
            try:
                _wait_up(proc, base)
                # the floor: a one-line page that needs no server, painted by the same browser
                shown = {"baseline": "data:text/html,<p>baseline</p>"}
                shown |= {k: v for k, v in urls.items() if not k.startswith("api/")}
                cold = _paint(browser, shown)
                time.sleep(1.0)
                warm = _paint(browser, shown)
            finally:
                proc.terminate()
                proc.wait(30)
                browser.close()
    print(f"installation: {args.models} models x {args.versions} versions, {args.rows} log rows,"
          f" model-000 v1 champion: {total} windows x {FEATURES} features ({windows} sent in"
          f" full by api/drift); mlgate ui answered {up_s:.1f} s after its start")  # fmt: skip
    print("| page | first request ms | complete ms | warm median ms | warm max ms | bytes"
          " | cold first byte ms | cold first paint ms | cold filled ms | warm first byte ms"
          " | warm first paint ms |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    if "baseline" in cold:
        c, w = cold["baseline"], warm["baseline"]
        print(f"| baseline (`data:` page, no server) | - | - | - | - | - | - | {c[0]:.0f} | - |"
              f" - | {w[0]:.0f} |")  # fmt: skip
    for name, r in results.items():
        c2, w2 = cold.get(name), warm.get(name)
        paint = (
            f"{c2[2]:.0f} | {c2[0]:.0f} | {c2[1]:.0f} | {w2[2]:.0f} | {w2[0]:.0f}"
            if c2 and w2
            else "- | - | - | - | -"
        )
        print(f"| {name} | {r['cold_ms']:.0f} | {r['complete_ms']:.0f} | {r['median_ms']:.0f}"
              f" | {r['max_ms']:.0f} | {r['bytes']:,} | {paint} |")  # fmt: skip


if __name__ == "__main__":
    main()
