"""Dashboard page-time benchmark on a large installation.

The installation (built once, cached under ``benchmarks/.work/dashboard``): ``--models``
models x ``--versions`` registered versions each (a 32-feature logistic regression, lineage
with metrics and parent), ``--rows`` prediction-log rows in the traffic window spread over
the models (half on the first model, with a canary and a shadow on every model), 3 features
drifted in the second half, and one monitor pass over all of it with ``--window-rows``-row
windows (so the first model has ~1,000 windows x 32 features), plus trainer-run events.

Measured: ``mlgate ui`` runs as its own process with its default cache (``cache_s = 2``,
stale-while-revalidate); per page and JSON endpoint, the time to the complete response of the
first request (cold: every figure computed) and of ``--repeat`` more 0.5 s apart (warm: a page
refreshing); with Chromium installed, each page is then loaded in headless Chromium and its
first contentful paint read from the browser (``performance`` API).

    .venv/bin/python -m benchmarks.bench_dashboard [--models 20 --versions 50 --rows 1000000]
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


def build(home: Path, *, models: int, versions: int, rows: int, window_rows: int) -> None:
    """Registry, log store and monitor state under ``home``."""
    import numpy as np
    import polars as pl
    from sklearn.linear_model import LogisticRegression

    from monitor import Monitor, MonitorConfig
    from registry import Registry, logschema, rollout

    rng = np.random.default_rng(0)
    reg = Registry("file://" + str(home / "registry"))
    x_ref = rng.normal(size=(2000, FEATURES))
    y = (x_ref[:, 0] + x_ref[:, 1] > 0).astype(int)
    ref = pl.DataFrame({n: x_ref[:, j] for j, n in enumerate(_names())})
    est = LogisticRegression().fit(x_ref.astype(np.float32), y)
    names = [f"model-{i:03d}" for i in range(models)]
    t0 = time.perf_counter()
    for name in names:
        for v in range(1, versions + 1):
            reg.register(
                name, est, reference=ref,
                metrics={"accuracy": 0.8 + 0.001 * v, "f1": 0.78 + 0.001 * v},
                parent_version=v - 1 if v > 1 else None, trigger="drift" if v > 1 else "manual",
            )  # fmt: skip
        rollout.start_rollout(reg, name, versions, weight=10.0, steps=[10.0, 50.0, 100.0])
        rollout.set_shadow(reg, name, versions - 1)
        reg.record_event(name, "trainer.run.finished", version=versions, detail={"run": "r1"})
    print(f"registered {models * versions} versions in {time.perf_counter() - t0:.0f} s")

    now_us = int(datetime.now(UTC).timestamp() * 1e6)
    logs = home / "logs"
    shares = [0.5] + [0.5 / (models - 1)] * (models - 1) if models > 1 else [1.0]
    seq = 0
    for name, share in zip(names, shares, strict=True):
        n = int(rows * share)
        x = rng.normal(size=(n, FEATURES))
        x[n // 2 :, list(DRIFTED)] += 1.0
        proba = est.predict_proba(x.astype(np.float32))
        route = np.where(rng.random(n) < 0.1, "canary", "champion")
        version = np.where(route == "canary", versions, 1)  # the champion is version 1
        start = now_us - 240_000_000
        cols: dict[str, Any] = {
            "ts": pl.Series(start + (np.arange(n) * (200_000_000 // max(n, 1)))).cast(
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
        frame = pl.DataFrame(cols)
        day = datetime.fromtimestamp(start / 1e6, UTC).strftime("%Y-%m-%d")
        folder = Path(logschema.segment_dir(str(logs), logschema.PREDICTIONS, name, day))
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(0, n, 50_000):  # gateway-sized segments
            seq += 1
            frame[k : k + 50_000].write_parquet(folder / f"w1-{seq:06d}.parquet")
    t0 = time.perf_counter()
    config = MonitorConfig(window_rows=window_rows, min_rows=min(window_rows, 200))
    monitor = Monitor(reg, str(logs), db=home / "monitor.duckdb", config=config)
    try:
        monitor.run_once()
    finally:
        monitor.close()
    print(f"monitor pass over {rows} rows in {time.perf_counter() - t0:.0f} s")
    (home / "built.json").write_text(
        json.dumps({"models": models, "versions": versions, "rows": rows, "at": now_us})
    )


def _serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    config = home / "mlgate.toml"
    config.write_text("[dashboard]\nmax_windows = 1000\ntraffic_window_s = 900.0\n")
    return subprocess.Popen(
        [sys.executable, "-c", "from mlgate.cli import main; main()", "ui", "--home", str(home),
         "--port", str(port)],
        cwd=home, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _time(url: str, repeat: int) -> dict[str, float]:
    """The first request (cold: nothing cached) and the next ``repeat`` (warm: a page
    refreshing, 0.5 s apart, served from the cache while it revalidates)."""
    import httpx

    with httpx.Client(timeout=120) as client:
        t0 = time.perf_counter()
        r = client.get(url)
        cold = time.perf_counter() - t0
        r.raise_for_status()
        times = []
        for _ in range(repeat):
            time.sleep(0.5)
            t0 = time.perf_counter()
            r = client.get(url)
            times.append(time.perf_counter() - t0)
            r.raise_for_status()
    return {"cold_ms": 1000 * cold, "median_ms": 1000 * statistics.median(times),
            "max_ms": 1000 * max(times), "bytes": len(r.content)}  # fmt: skip


def _first_paint(urls: dict[str, str]) -> dict[str, float]:
    from tests.dashboard.cdp import Browser, chromium_path

    if chromium_path() is None:
        return {}
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as profile:
        browser = Browser(Path(profile))
        try:
            for page, url in urls.items():
                browser.open(url)
                out[page] = float(
                    browser.js(
                        "performance.getEntriesByName('first-contentful-paint')[0]?.startTime"
                        " ?? performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"
                    )
                )
        finally:
            browser.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", type=int, default=20)
    p.add_argument("--versions", type=int, default=50)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--window-rows", type=int, default=500)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--port", type=int, default=8097)
    p.add_argument("--rebuild", action="store_true")
    args = p.parse_args()
    home = WORK / f"{args.models}x{args.versions}x{args.rows}"
    if args.rebuild or not (home / "built.json").exists():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        build(home, models=args.models, versions=args.versions, rows=args.rows,
              window_rows=args.window_rows)  # fmt: skip
    import httpx

    proc = _serve(home, args.port)
    base = f"http://127.0.0.1:{args.port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/static/app.js").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("mlgate ui did not start")
            time.sleep(0.2)
        first = "model-000"
        keys = httpx.get(f"{base}/api/models/{first}/drift", timeout=120).json()["keys"]
        champion = max((k for k in keys if k["route"] == "champion"), key=lambda k: k["windows"])
        drift_key = f"?version={champion['version']}&route=champion"
        pages = {
            "Models": f"{base}/",
            "Model": f"{base}/models/{first}",
            "Drift": f"{base}/models/{first}/drift{drift_key}",
            "Events": f"{base}/events",
            "api/models": f"{base}/api/models",
            "api/model": f"{base}/api/models/{first}",
            "api/drift": f"{base}/api/models/{first}/drift{drift_key}",
            "api/events": f"{base}/api/events",
        }
        results = {name: _time(url, args.repeat) for name, url in pages.items()}
        paint = _first_paint({k: v for k, v in pages.items() if not k.startswith("api/")})
        drift = httpx.get(pages["api/drift"]).json()
        windows = len(drift["grid"]["windows"]) if drift.get("grid") else 0
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"installation: {args.models} models x {args.versions} versions, {args.rows} log rows, "
          f"{windows} windows x {FEATURES} features on the drift page")  # fmt: skip
    print("| page | cold ms | warm median ms | warm max ms | first paint ms | bytes |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        fp = f"{paint[name]:.0f}" if name in paint else "-"
        print(f"| {name} | {r['cold_ms']:.0f} | {r['median_ms']:.0f} | {r['max_ms']:.0f} | {fp}"
              f" | {r['bytes']} |")  # fmt: skip


if __name__ == "__main__":
    main()
