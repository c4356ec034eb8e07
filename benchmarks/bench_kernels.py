"""Tree-ensemble kernels vs a raw onnxruntime session, over a grid of forest shapes.

Each shape is fitted once on small synthetic data (``make_classification`` /
``make_regression``) and cached with its skl2onnx export under ``benchmarks/.cache/``. Per
shape and batch size (1, 64, 4,096 rows) three contenders are timed side by side:

- ``ort``: ``onnxruntime.InferenceSession`` built directly on the skl2onnx model (no ZipMap),
  one intra-op and one inter-op thread, sequential execution, ``ORT_ENABLE_ALL``, float32
  input, called as ``session.run(None, {"X": X})``;
- ``runtime``: our numba runtime, ``compile_model(model, "numba").predict(X)`` (the wrapper
  the gateway calls: input checks, kernel, outputs as a dict);
- ``kernel``: the runtime's compiled kernel called directly with its prepared arguments
  (what the wrapper adds is ``runtime`` minus ``kernel``).

Every contender is checked against scikit-learn before it is timed (numba: labels identical,
values within 1e-6; onnxruntime computes in float32: within 1e-3). Timing is in rounds: each
round gives every contender a short burst of calls in rotating order, so the shared machine's
drift hits all three alike; calls cycle through distinct held-out batches.

    .venv/bin/python -m benchmarks.bench_kernels [--shapes NAME ...] [--budget-ms 150]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

CACHE = Path(__file__).resolve().parent / ".cache"
BATCHES = (1, 64, 4096)
HOLDOUT = 3 * 4096
Call = Callable[[np.ndarray], Any]


@dataclass(frozen=True)
class Shape:
    name: str
    make: Callable[[], Any]
    task: str  # "binary" | "multi" | "regression"
    n_features: int
    n_train: int


SHAPES = (
    Shape("rf-bin-10t-d4-4f", lambda: RandomForestClassifier(10, max_depth=4), "binary", 4, 2000),
    Shape(
        "rf-bin-100t-d8-32f", lambda: RandomForestClassifier(100, max_depth=8), "binary", 32, 5000
    ),
    Shape("rf-multi-300t-deep-32f", lambda: RandomForestClassifier(300), "multi", 32, 5000),
    Shape("rf-reg-1000t-deep-16f", lambda: RandomForestRegressor(1000), "regression", 16, 1000),
    Shape("et-bin-100t-deep-500f", lambda: ExtraTreesClassifier(100), "binary", 500, 2000),
    Shape(
        "et-reg-300t-d12-64f",
        lambda: ExtraTreesRegressor(300, max_depth=12),
        "regression",
        64,
        3000,
    ),
    Shape("gb-bin-100t-d3-32f", lambda: GradientBoostingClassifier(), "binary", 32, 5000),
    Shape("gb-multi-100x5t-d3-32f", lambda: GradientBoostingClassifier(), "multi", 32, 3000),
    Shape(
        "gb-reg-1000t-d5-500f",
        lambda: GradientBoostingRegressor(n_estimators=1000, max_depth=5, max_features=25),
        "regression",
        500,
        1000,
    ),
    Shape(
        "hgb-bin-10t-d2-4f",
        lambda: HistGradientBoostingClassifier(max_iter=10, max_depth=2, early_stopping=False),
        "binary",
        4,
        2000,
    ),
    Shape(
        "hgb-bin-100t-32f",
        lambda: HistGradientBoostingClassifier(max_iter=100, early_stopping=False),
        "binary",
        32,
        5000,
    ),
    Shape(
        "hgb-multi-50x5t-deep-32f",
        lambda: HistGradientBoostingClassifier(
            max_iter=50, max_leaf_nodes=None, min_samples_leaf=4, early_stopping=False
        ),
        "multi",
        32,
        3000,
    ),
    Shape(
        "hgb-reg-1000t-500f",
        lambda: HistGradientBoostingRegressor(max_iter=1000, early_stopping=False),
        "regression",
        500,
        1000,
    ),
)
SHAPE_NAMES = tuple(s.name for s in SHAPES)


@dataclass(frozen=True)
class Fitted:
    shape: Shape
    model: Any
    onnx: bytes
    holdout: np.ndarray  # float32 [HOLDOUT, d]


def _data(shape: Shape) -> tuple[np.ndarray, np.ndarray]:
    n = shape.n_train + HOLDOUT
    d = shape.n_features
    if shape.task == "regression":
        X, y = make_regression(n, d, n_informative=min(d, 12), noise=5.0, random_state=0)
    else:
        informative = min(d - 1, 12)
        X, y = make_classification(
            n,
            d,
            n_informative=informative,
            n_redundant=min(d - informative, 2),
            n_classes=5 if shape.task == "multi" else 2,
            flip_y=0.05,
            random_state=0,
        )
    return X.astype(np.float32), y


def load(shape: Shape) -> Fitted:
    """Fit ``shape`` and export it with skl2onnx, or load both from the cache."""
    from registry.onnx_export import export_onnx

    path = CACHE / f"kernels-{shape.name}-sklearn{sklearn.__version__}.joblib"
    if path.exists():
        model, onnx, holdout = joblib.load(path)
        return Fitted(shape, model, onnx, holdout)
    X, y = _data(shape)
    model = shape.make()
    model.set_params(random_state=0)
    model.fit(X[: shape.n_train], y[: shape.n_train])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx = export_onnx(model)
    CACHE.mkdir(parents=True, exist_ok=True)
    holdout = np.ascontiguousarray(X[shape.n_train :])
    tmp = path.with_suffix(".tmp")
    joblib.dump((model, onnx, holdout), tmp)
    tmp.replace(path)
    return Fitted(shape, model, onnx, holdout)


def raw_ort(onnx: bytes) -> Call:
    """A raw onnxruntime session with its best single-thread settings."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    run = session.run

    def call(X: np.ndarray) -> Any:
        return run(None, {name: X})

    return call


def node_count(model: Any) -> int:
    if hasattr(model, "_predictors"):
        return sum(p.nodes.shape[0] for it in model._predictors for p in it)
    trees = model.estimators_
    flat = trees.ravel() if isinstance(trees, np.ndarray) else trees
    return sum(int(t.tree_.node_count) for t in flat)


def n_trees(model: Any) -> int:
    if hasattr(model, "_predictors"):
        return sum(len(it) for it in model._predictors)
    trees = model.estimators_
    return int(trees.size) if isinstance(trees, np.ndarray) else len(trees)


def check(fitted: Fitted, calls: dict[str, Call], kernel_out: np.ndarray, X: np.ndarray) -> None:
    """Raise ``AssertionError`` unless every contender agrees with scikit-learn on ``X``
    (``kernel_out``: the array the bare kernel writes its values into)."""
    model = fitted.model
    classifier = hasattr(model, "classes_")
    want = model.predict_proba(X) if classifier else model.predict(X)
    for name, fn in calls.items():
        got = fn(X)
        if name == "ort":
            value = got[1] if classifier else got[0].ravel()
            np.testing.assert_allclose(value, want, atol=1e-3, rtol=1e-3, err_msg=name)
            continue
        if name == "kernel":
            assert got == -1, f"kernel status {got}"
            value = kernel_out[: X.shape[0]] if classifier else kernel_out[: X.shape[0], 0]
        else:
            value = got["predict_proba"] if classifier else got["predict"]
            if classifier:
                np.testing.assert_array_equal(got["predict"], model.predict(X), name)
        np.testing.assert_allclose(value, want, atol=1e-6, rtol=1e-9, err_msg=name)


def time_rounds(
    calls: dict[str, Call],
    batches: list[np.ndarray],
    *,
    budget_s: float,
    burst_s: float,
    chunk: int = 1,
) -> dict[str, np.ndarray]:
    """Thread CPU nanoseconds per call, one figure per burst, per contender.

    Rounds of bursts in rotating order, so the shared machine's drift hits every contender
    alike. A burst's figure is its thread CPU time over its calls: time the thread spent
    descheduled (this 2-core box is shared by several busy processes) does not count, and
    the clock (a system call here, ~1-5 us) is read twice a burst, not twice a call. The
    burst's first call re-warms the caches after the other contenders and is not counted."""
    names = list(calls)
    times: dict[str, list[float]] = {n: [] for n in names}
    position = dict.fromkeys(names, 0)
    start = time.perf_counter()
    rounds = 0
    while rounds < 3 or time.perf_counter() - start < budget_s:
        order = names[rounds % len(names) :] + names[: rounds % len(names)]
        for name in order:
            fn = calls[name]
            fn(batches[position[name] % len(batches)])
            position[name] += 1
            wall_end = time.perf_counter() + burst_s
            cpu0 = time.thread_time_ns()
            made = 0
            while True:
                for _ in range(chunk):
                    fn(batches[position[name] % len(batches)])
                    position[name] += 1
                made += chunk
                if time.perf_counter() >= wall_end:
                    break
            times[name].append((time.thread_time_ns() - cpu0) / made)
        rounds += 1
    return {n: np.asarray(t, dtype=np.float64) for n, t in times.items()}


def contenders(fitted: Fitted) -> tuple[dict[str, Call], np.ndarray]:
    from gateway.runtimes.numba.compile import compile_numba

    rt = compile_numba(fitted.model)
    kernel, args = rt.kernel_call(max(BATCHES))
    calls = {
        "ort": raw_ort(fitted.onnx),
        "runtime": rt.predict,
        "kernel": lambda X: kernel(X, *args),
    }
    return calls, args[-2]


def run(shapes: tuple[Shape, ...], *, budget_s: float) -> str:
    load_before = os.getloadavg()
    started = dt.datetime.now(dt.UTC)
    lines = [
        "| shape | trees | nodes | batch | ort µs | runtime µs | kernel µs | wrapper µs "
        "| × ort (runtime) | × ort (kernel) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    summary: dict[int, list[float]] = {b: [] for b in BATCHES}
    for shape in shapes:
        fitted = load(shape)
        calls, kernel_out = contenders(fitted)
        check(fitted, calls, kernel_out, fitted.holdout[:64])
        check(fitted, calls, kernel_out, fitted.holdout[64:65])
        nodes, trees = node_count(fitted.model), n_trees(fitted.model)
        for batch in BATCHES:
            count = max(2, min(64, fitted.holdout.shape[0] // batch))
            batches = [
                np.ascontiguousarray(fitted.holdout[i * batch : (i + 1) * batch])
                for i in range(count)
            ]
            burst = 0.02 if batch < 4096 else 0.05
            chunk = 8 if batch == 1 else 1
            ns = time_rounds(calls, batches, budget_s=budget_s, burst_s=burst, chunk=chunk)
            med = {n: float(np.median(t)) / 1e3 for n, t in ns.items()}
            ratio = med["ort"] / med["runtime"]
            summary[batch].append(ratio)
            lines.append(
                f"| {shape.name} | {trees} | {nodes:,} | {batch} | {med['ort']:,.1f} "
                f"| {med['runtime']:,.1f} | {med['kernel']:,.1f} "
                f"| {med['runtime'] - med['kernel']:.2f} | {ratio:.2f} "
                f"| {med['ort'] / med['kernel']:.2f} |"
            )
            print(lines[-1], flush=True)
    load_after = os.getloadavg()
    summary_lines = [
        f"- batch {b}: × ort (runtime) min {min(r):.2f}, median {float(np.median(r)):.2f}, "
        f"max {max(r):.2f}; shapes ≥ 2×: {sum(x >= 2 for x in r)}/{len(r)}, "
        f"≥ 1.5×: {sum(x >= 1.5 for x in r)}/{len(r)}"
        for b, r in summary.items()
        if r
    ]
    header = (
        f"{started:%Y-%m-%d %H:%M} UTC; load average (1 min) before/after: "
        f"{load_before[0]:.2f} / {load_after[0]:.2f}, {os.cpu_count()} CPUs; medians of calls "
        "of bursts' thread CPU time per call, bursts in rotating order; × columns: ort's median "
        "/ ours (above 1: we are faster).\n"
    )
    return header + "\n" + "\n".join(lines) + "\n\n" + "\n".join(summary_lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shapes", nargs="*", default=list(SHAPE_NAMES), choices=SHAPE_NAMES)
    parser.add_argument("--budget-ms", type=float, default=150.0, help="time per point")
    parser.add_argument("--fit-only", action="store_true", help="fit and cache, no timing")
    args = parser.parse_args(argv)
    shapes = tuple(s for s in SHAPES if s.name in args.shapes)
    if args.fit_only:
        for shape in shapes:
            t0 = time.perf_counter()
            fitted = load(shape)
            print(
                f"{shape.name}: {n_trees(fitted.model)} trees, {node_count(fitted.model):,} "
                f"nodes, {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
        return
    print(run(shapes, budget_s=args.budget_ms / 1e3))


if __name__ == "__main__":
    main()
