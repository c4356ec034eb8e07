"""numba vs scikit-learn vs onnxruntime (1 and 2 threads) vs tl2cgen, side by side.

pytest-benchmark::

    .venv/bin/pytest benchmarks/bench_runtimes.py --benchmark-enable --benchmark-group-by=group

Markdown table (median and p99 per call, rows/s, ratios; BENCHMARKS.md "Kernel timings")::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_runtimes --table \
        [--budget-ms 250] [--build-tl2cgen]

(one BLAS thread: OpenBLAS's second thread spin-waits on a busy 2-core box and costs the MLP
up to 50x at 512 rows; a gateway gets its parallelism from batcher threads instead.)

Compile cost (cold numba cache vs cached reload, in fresh processes)::

    .venv/bin/python -m benchmarks.bench_runtimes --compile-times

Every runtime's output is checked against scikit-learn on every distinct batch before it is
timed; calls cycle through distinct held-out batches so no branch predictor memorises a row.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from benchmarks.bench_models import MODEL_NAMES, TREE_MODELS, BenchModel, load
from benchmarks.tl2cgen_build import tl2cgen_predict
from gateway.runtimes import compile_model

BATCHES = (1, 8, 64, 512, 4096)
RUNTIMES = ("numba", "numba-2t", "onnx-1t", "onnx-2t", "tl2cgen", "sklearn")
Predict = Callable[[np.ndarray], dict[str, np.ndarray]]


class Suite:
    """One model, its runtimes (or why one is missing) and its held-out batches."""

    def __init__(self, bench: BenchModel, *, build_tl2cgen: bool) -> None:
        self.bench = bench
        self.runtimes: dict[str, Predict] = {}
        self.missing: dict[str, str] = {}
        model = bench.model
        self.runtimes["numba"] = compile_model(model, "numba").predict
        if bench.name in TREE_MODELS:  # the others have no parallel kernel
            parallel = compile_model(model, "numba", parallel_rows=256)
            self.runtimes["numba-2t"] = parallel.predict
        else:
            self.missing["numba-2t"] = "same as numba (no parallel kernel)"
        for threads in (1, 2):
            rt = compile_model(model, "onnx", threads=threads)
            self.runtimes[f"onnx-{threads}t"] = rt.predict
        fn, reason = tl2cgen_predict(bench, build=build_tl2cgen)
        if fn is not None:
            self.runtimes["tl2cgen"] = fn
        else:
            self.missing["tl2cgen"] = reason
        self.runtimes["sklearn"] = compile_model(model, "sklearn").predict

    def batches(self, size: int, count: int = 64) -> list[np.ndarray]:
        rows = self.bench.holdout
        n = max(1, min(count, rows.shape[0] // size))
        return [np.ascontiguousarray(rows[i * size : (i + 1) * size]) for i in range(n)]

    def check(self, runtime: str, batches: list[np.ndarray]) -> None:
        """Raise ``AssertionError`` unless ``runtime`` agrees with scikit-learn on ``batches``."""
        model = self.bench.model
        fn = self.runtimes[runtime]
        exact = runtime.startswith("numba") or runtime == "sklearn"
        for X in batches:
            got = fn(X)
            if hasattr(model, "predict_proba"):
                want = model.predict_proba(X)
                atol = 1e-6 if exact else 1e-4
                np.testing.assert_allclose(got["predict_proba"], want, atol=atol, err_msg=runtime)
                if exact:
                    np.testing.assert_array_equal(got["predict"], model.predict(X), runtime)
            else:
                want = model.predict(X)
                rtol = 1e-9 if exact else 1e-4
                np.testing.assert_allclose(
                    got["predict"], want, rtol=rtol, atol=1e-6 if exact else 1e-3, err_msg=runtime
                )


def time_round_robin(
    fns: dict[str, Predict],
    batches: list[np.ndarray],
    *,
    budget_s: float,
    burst_s: float = 0.025,
    min_rounds: int = 4,
) -> dict[str, np.ndarray]:
    """Nanoseconds per call for each runtime, measured in rounds of short bursts: within a
    round every runtime gets a ``burst_s`` burst of calls (rotating order), so the machine's
    drift (up to 2x on this shared box) hits all of them alike, while each burst keeps its own
    model in cache as a serving loop would (the first two calls of a burst re-warm the cache
    after the other runtimes and are not counted). Batches cycle through held-out rows."""
    names = list(fns)
    times: dict[str, list[int]] = {name: [] for name in names}
    cursor = {name: itertools.cycle(batches) for name in names}
    start = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or time.perf_counter() - start < budget_s:
        order = names[rounds % len(names) :] + names[: rounds % len(names)]
        for name in order:
            fn, burst_start, calls = fns[name], time.perf_counter(), 0
            while calls < 3 or time.perf_counter() - burst_start < burst_s:
                X = next(cursor[name])
                t0 = time.perf_counter_ns()
                fn(X)
                if calls >= 2:
                    times[name].append(time.perf_counter_ns() - t0)
                calls += 1
        rounds += 1
    return {name: np.asarray(t, dtype=np.float64) for name, t in times.items()}


def run_table(models: tuple[str, ...], *, budget_s: float, build_tl2cgen: bool) -> str:
    load_before = os.getloadavg()
    lines = [
        "| model | batch | runtime | median µs | p99 µs | rows/s | × onnx best | × sklearn |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    notes: list[str] = []
    for name in models:
        suite = Suite(load(name), build_tl2cgen=build_tl2cgen)
        notes += [
            f"- {name}: {rt} not measured: {why}"
            for rt, why in suite.missing.items()
            if rt != "numba-2t"
        ]
        for batch in BATCHES:
            batches = suite.batches(batch)
            checked: dict[str, Predict] = {}
            for runtime in RUNTIMES:
                if runtime not in suite.runtimes:
                    continue
                try:
                    suite.check(runtime, batches[:8])
                except AssertionError as exc:
                    notes.append(f"- {name} batch {batch}: {runtime} disagrees: {exc}")
                    continue
                checked[runtime] = suite.runtimes[runtime]
            timings = time_round_robin(checked, batches, budget_s=budget_s * len(checked))
            results = {
                runtime: (float(np.median(ns)) / 1e3, float(np.percentile(ns, 99)) / 1e3)
                for runtime, ns in timings.items()
            }
            onnx_best = min(results[r][0] for r in ("onnx-1t", "onnx-2t") if r in results)
            sk = results.get("sklearn", (float("nan"), 0.0))[0]
            for runtime, (median, p99) in results.items():
                lines.append(
                    f"| {name} | {batch} | {runtime} | {median:,.1f} | {p99:,.1f} | "
                    f"{batch / median * 1e6:,.0f} | {onnx_best / median:.2f} | {sk / median:.1f} |"
                )
    load_after = os.getloadavg()
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    header = (
        f"Load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
        f"(1 min), {os.cpu_count()} CPUs, OPENBLAS_NUM_THREADS={blas}; numba is the default "
        "(one thread); numba-2t runs tree batches of 256+ rows on 2 threads; runtimes "
        "measured in rotating 25 ms bursts; × columns are speed-ups (their median / this one).\n"
    )
    return header + "\n" + "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "") + "\n"


_COMPILE_PROBE = """
import sys, time
from benchmarks.bench_models import load
bench = load(sys.argv[1])
t0 = time.perf_counter()
import gateway.runtimes.numba.compile  # numba itself and our kernel modules
from gateway.runtimes import compile_model
t1 = time.perf_counter()
rt = compile_model(bench.model, "numba")
rt.predict(bench.holdout[:1]); rt.predict(bench.holdout[:512])
t2 = time.perf_counter()
rt = compile_model(bench.model, "numba")
rt.predict(bench.holdout[:1]); rt.predict(bench.holdout[:512])
t3 = time.perf_counter()
print(f"{t1 - t0:.2f} {t2 - t1:.2f} {t3 - t2:.3f}")
"""


def compile_times(models: tuple[str, ...]) -> str:
    """Per model, in fresh processes: with an empty numba cache, then with the cache filled.

    Each process times importing numba and the kernel modules, compiling the model and
    predicting 1 and 512 rows, then the same again in the warm process (a hot reload of a new
    version of a model whose kernels are loaded). Every model gets its own empty cache.
    """
    lines = [
        "| model | import s | cold: compile + first predict s | cached: compile + first "
        "predict s | same process again s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in models:
        load(name)  # fit outside the timed runs
        with tempfile.TemporaryDirectory() as cache_dir:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
            runs = [
                subprocess.run(
                    [sys.executable, "-c", _COMPILE_PROBE, name],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.split()
                for _ in range(2)
            ]
        (imp, cold, _), (_, warm, again) = runs
        lines.append(f"| {name} | {imp} | {cold} | {warm} | {again} |")
    return "\n".join(lines) + "\n"


# ---- pytest-benchmark ---------------------------------------------------------------------

_SUITES: dict[str, Suite] = {}


def _suite(name: str) -> Suite:
    if name not in _SUITES:
        _SUITES[name] = Suite(load(name), build_tl2cgen=False)
    return _SUITES[name]


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_runtime(benchmark: Any, model_name: str, runtime: str, batch: int) -> None:
    suite = _suite(model_name)
    if runtime not in suite.runtimes:
        pytest.skip(f"{runtime}: {suite.missing.get(runtime, 'not available')}")
    batches = suite.batches(batch)
    suite.check(runtime, batches[:4])
    fn = suite.runtimes[runtime]
    cycle: Iterator[np.ndarray] = itertools.cycle(batches)
    benchmark.group = f"{model_name} batch {batch}"
    benchmark.extra_info["rows"] = batch
    benchmark(lambda: fn(next(cycle)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="store_true", help="print the Markdown table")
    parser.add_argument("--compile-times", action="store_true", help="numba compile cost")
    parser.add_argument("--models", nargs="*", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--budget-ms", type=float, default=250.0, help="time per point")
    parser.add_argument(
        "--build-tl2cgen",
        action="store_true",
        help="compile missing tl2cgen libraries (minutes for the forest)",
    )
    args = parser.parse_args(argv)
    models = tuple(args.models)
    if args.compile_times:
        print(compile_times(models))
    if args.table or not args.compile_times:
        print(run_table(models, budget_s=args.budget_ms / 1e3, build_tl2cgen=args.build_tl2cgen))


if __name__ == "__main__":
    main()
