"""The trainer's costs: data assembly, fit times, and the gateway's p99 during a retrain.

``python -m benchmarks.bench_trainer [--rows 1000000] [--features 32] [--rate 200]
[--duration-s 15] [--hgb-rows 200000]``

1. writes ``--rows`` labelled production rows x ``--features`` float features as the
   gateway's Parquet segments (10 prediction + 10 feedback segments, LZ4);
2. **data assembly**: ``trainer.data.assemble`` (DuckDB join of predictions and feedback on
   the monitor's key, feature selection, time-ordered split, fingerprint), best of 3;
3. **fit times**: the champion's clone (logistic regression) as the run fits it, in a
   spawned process with ``fit_threads = 1``; and HistGradientBoosting on ``--hgb-rows``;
4. **gateway p99**: ``mlgate serve --role gateway`` serves the champion; an open-loop client
   offers ``--rate`` requests/s of one row for ``--duration-s`` without a retrain, then again
   while ``trainer.retrain`` runs on the 1M rows in this process (its fit in its own process).

Prints one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.asyncio_load import http_request, open_loop
from benchmarks.proc import ServerProcess, free_port
from registry import Registry
from registry.logschema import FEEDBACK, PREDICTIONS, feature_column, segment_dir

MODEL = "bench"
SEGMENTS = 10


def _concept(X: np.ndarray) -> np.ndarray:
    w = np.linspace(-1, 1, X.shape[1])
    return (X @ w > 0).astype(np.int64)


def write_logs(logs: Path, rows: int, features: int, *, seed: int = 0) -> None:
    """``rows`` labelled rows as the gateway and the feedback endpoint write them."""
    rng = np.random.default_rng(seed)
    per = rows // SEGMENTS
    start = datetime(2026, 12, 1, tzinfo=UTC)
    names = [f"x{i}" for i in range(features)]
    for s in range(SEGMENTS):
        X = rng.normal(size=(per, features))
        y = _concept(X)
        first = start + timedelta(seconds=s * per)
        ts = pl.datetime_range(
            first, first + timedelta(microseconds=per - 1), "1us", eager=True, time_zone="UTC"
        )
        ids = pl.Series([f"s{s}-{i}" for i in range(per)])
        pred = pl.DataFrame(
            {
                "ts": ts,
                "request_id": ids,
                "model": MODEL,
                "version": 1,
                "route": "champion",
                **{feature_column(n): X[:, i] for i, n in enumerate(names)},
                "prediction": y.astype(str),
                "latency_us": 100,
                "batch_rows": 1,
                "status": 200,
            }
        )
        fb = pl.DataFrame(
            {
                "ts": ts,
                "request_id": ids,
                "model": MODEL,
                "label": y.astype(str),
                "label_value": y.astype(float),
            }
        )
        day = first.strftime("%Y-%m-%d")
        for kind, frame in ((PREDICTIONS, pred), (FEEDBACK, fb)):
            folder = Path(segment_dir(str(logs), kind, MODEL, day))
            folder.mkdir(parents=True, exist_ok=True)
            frame.write_parquet(folder / f"bench-{s}.parquet", compression="lz4")


def register_champion(reg: Registry, features: int) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = rng.normal(size=(5000, features))
    model = LogisticRegression(max_iter=200).fit(X.astype(np.float32), _concept(X))
    names = [f"x{i}" for i in range(features)]
    reg.register(MODEL, model, reference=pl.DataFrame(X, schema=names))


def assembly_s(reg: Registry, logs: Path, repeats: int = 3) -> dict[str, Any]:
    from trainer import TrainerSettings
    from trainer.data import LogReader, assemble, labelled_rows

    champion = reg.get(MODEL, "champion")
    settings = TrainerSettings(recent_rows=0, keep_reference=False)
    reader = LogReader(str(logs))
    joins, totals, join_cpu, total_cpu = [], [], [], []
    rows = None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        labelled_rows(reader, MODEL, champion.input_schema.names, recent_rows=0)
        joins.append(time.perf_counter() - t0)
        join_cpu.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        rows = assemble(reg, reader, champion, settings)
        totals.append(time.perf_counter() - t0)
        total_cpu.append(time.process_time() - c0)
    assert rows is not None
    return {
        "join_s_best": min(joins),
        "join_s_all": joins,
        "assemble_s_best": min(totals),
        "assemble_s_all": totals,
        "join_cpu_s_best": min(join_cpu),
        "assemble_cpu_s_best": min(total_cpu),
        "rows": rows.rows,
    }


def hgb_fit_s(features: int, rows: int) -> float:
    from trainer import fit

    rng = np.random.default_rng(3)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    job = fit.FitJob(
        recipe="builtin:hist_gradient_boosting",
        task="classification",
        unfitted=None,
        frame=pl.DataFrame(),
        target="label",
        X=X,
        y=_concept(X),
        weights=None,
        threads=1,
    )
    result = fit.fit_in_child(job, timeout_s=1800)
    if result.error:
        raise RuntimeError(result.error)
    return result.fit_s


def load(port: int, features: int, rate: float, duration_s: float) -> dict[str, Any]:
    rng = np.random.default_rng(5)
    bodies = []
    for _ in range(256):
        row = rng.normal(size=features).astype(np.float32)
        body = json.dumps(
            {
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [1, features],
                        "datatype": "FP32",
                        "data": row.tolist(),
                    }
                ]
            }
        ).encode()
        bodies.append(http_request("127.0.0.1", port, f"/v2/models/{MODEL}/infer", body))
    result = open_loop("127.0.0.1", port, bodies, rate=rate, duration_s=duration_s)
    return {
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "max_ms": result.max_ms,
        "requests": result.requests,
        "errors": result.errors,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration-s", type=float, default=15.0)
    parser.add_argument("--hgb-rows", type=int, default=200_000)
    parser.add_argument("--no-gateway", action="store_true", help="Skip the p99 measurement.")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="mlgate-bench-trainer-"))
    out: dict[str, Any] = {
        "rows": args.rows,
        "features": args.features,
        "load_average": os.getloadavg(),
    }
    try:
        reg = Registry(str(home / "registry"))
        register_champion(reg, args.features)
        logs = home / "logs"
        t0 = time.perf_counter()
        write_logs(logs, args.rows, args.features)
        out["write_segments_s"] = time.perf_counter() - t0
        out["assembly"] = assembly_s(reg, logs)
        out["hgb_fit_s"] = {
            "rows": args.hgb_rows,
            "seconds": hgb_fit_s(args.features, args.hgb_rows),
        }
        out.update(_gateway_during_retrain(home, reg, logs, args))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    out["load_average_after"] = os.getloadavg()
    print(json.dumps(out, indent=2, default=str))
    return out


def _retrain_process(home: Path, reg: Registry, logs: Path) -> subprocess.Popen[str]:
    """``mlgate trainer retrain`` in its own process, as ``mlgate serve`` runs the trainer
    (its default nice level and one fitting thread)."""
    (home / "mlgate.toml").write_text(
        "[trainer]\nrecent_rows = 0\nkeep_reference = false\nrollout = false\n"
        "bootstrap_rounds = 100\n"
    )
    cmd = [
        sys.executable,
        "-P",
        "-m",
        "mlgate",
        "trainer",
        "retrain",
        MODEL,
        "--registry",
        reg.url,
        "--logs",
        str(logs),
        "--format",
        "json",
    ]
    from trainer.fit import lower_priority

    # niced from its first instruction (the trainer lowers its own priority once it has read
    # its settings; its imports before that would otherwise compete with serving)
    return subprocess.Popen(
        cmd,
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: lower_priority(10),
    )


def _gateway_during_retrain(
    home: Path, reg: Registry, logs: Path, args: argparse.Namespace
) -> dict[str, Any]:
    if args.no_gateway:
        proc = _retrain_process(home, reg, logs)
        return {"retrain": _run_figures(json.loads(proc.communicate()[0]))}
    port = free_port()
    server = ServerProcess(
        name="mlgate",
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/v2/health/ready",
        argv=[
            sys.executable,
            "-P",  # the working directory holds a registry/ folder: keep it off sys.path
            "-m",
            "mlgate",
            "serve",
            "--role",
            "gateway",
            "--home",
            str(home),
            "--port",
            str(port),
            "--grpc-port",
            "0",
            "--log-level",
            "warning",
        ],
        env={**os.environ, "MLGATE_HOME": str(home)},
        cwd=str(home),
    )
    server.start()
    try:
        load(port, args.features, args.rate, 3.0)  # warm-up
        quiet = load(port, args.features, args.rate, args.duration_s)
        proc = _retrain_process(home, reg, logs)
        time.sleep(1.0)  # the run is starting: measure from here
        busy = load(port, args.features, args.rate, args.duration_s)
        running_at_end = proc.poll() is None
        run = json.loads(proc.communicate()[0])
    finally:
        server.stop()
    return {
        "gateway_without_retrain": quiet,
        "gateway_during_retrain": busy,
        "p99_ratio": busy["p99_ms"] / quiet["p99_ms"] if quiet["p99_ms"] else None,
        "retrain_still_running_at_end_of_load": running_at_end,
        "retrain": _run_figures(run),
    }


def _run_figures(run: dict[str, Any]) -> dict[str, Any]:
    keys = ("status", "timings_s", "rows", "candidates", "reason")
    return {k: run.get(k) for k in keys}


if __name__ == "__main__":
    main()
