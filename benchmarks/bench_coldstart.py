"""Cold start (issue 16), side by side in one run, each step in fresh processes:

- per kernel family, compile + first predict with an empty numba cache, then the same in a new
  process with that cache filled (``gateway.runtimes.numba.warm``'s samples; the monitor's
  kernels);
- ``mlgate models register`` of the reference forest (``benchmarks.workload``: 100 trees,
  depth 12, 32 features), from its joblib file (``--trust-pickle``) and from a ``.skops`` file;
- ``mlgate serve`` (``--role all``, the default, and ``--role gateway``) with that forest
  registered, from the start of the process until ``/v2/health/ready`` answers 200: with the
  kernels warmed (``mlgate kernels warm``, as ``make`` installs) and with an empty cache;
  and ``--role gateway`` without the runtime that registration saved (``gateway.loading``'s
  cache, emptied with ``XDG_CACHE_HOME``), so it loads the artifact through scikit-learn.

    .venv/bin/python -m benchmarks.bench_coldstart [--runs 3] [--compile-runs 1]

Prints a markdown table (median and range over the runs) and the load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.proc import free_port, tree_cpu_seconds
from benchmarks.workload import model_path

REPO = Path(__file__).resolve().parent.parent
FAMILIES = ("trees", "linear", "mlp", "monitor")

COMPILE_PROBE = """
import sys
family = sys.argv[1]
if family == "monitor":
    from monitor.warm import warm_kernels as warm_monitor
    print(sum(warm_monitor().values()))
else:
    from gateway.runtimes.numba.warm import warm_kernels
    print(sum(w.seconds for w in warm_kernels(families=(family,), parallel=False)))
"""


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def _mlgate(*args: str) -> list[str]:
    return [sys.executable, "-P", "-m", "mlgate", *args]


def compile_seconds(family: str, cache: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-P", "-c", COMPILE_PROBE, family], env=_env(NUMBA_CACHE_DIR=str(cache)),
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(done.stdout.split()[-1])


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def register_seconds(model_file: Path, home: Path, *extra: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one registration."""
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    start, cpu = time.perf_counter(), _children_cpu()
    subprocess.run(
        _mlgate("models", "register", "rf", str(model_file), "--home", str(home), *extra),
        env=_env(), cwd=home, capture_output=True, check=True,
    )  # fmt: skip
    return time.perf_counter() - start, _children_cpu() - cpu


def serve_ready_seconds(
    home: Path, cache: Path, role: str, timeout_s: float = 600.0, **env: str
) -> tuple[float, float]:
    """(wall, CPU of the process tree) seconds from start until ready."""
    port = free_port()
    argv = _mlgate("serve", "--home", str(home), "--port", str(port), "--grpc-port", "0",
                   "--role", role, "--log-level", "warning")  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=_env(NUMBA_CACHE_DIR=str(cache), **env), cwd=home, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with httpx.Client(timeout=2) as http:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"mlgate serve exited with {proc.returncode}")
                try:
                    if http.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                        return time.perf_counter() - start, tree_cpu_seconds(proc.pid)
                except httpx.TransportError:
                    pass
                if time.perf_counter() - start > timeout_s:
                    raise RuntimeError("mlgate serve not ready in time")
                time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f} s"
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def _fmt_cpu(runs: list[tuple[float, float]]) -> str:
    """Wall time, and the CPU seconds it took (what a loaded machine does not inflate as much)."""
    return f"{_fmt([w for w, _ in runs])}, CPU {_fmt([c for _, c in runs])}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions of register, serve")
    parser.add_argument("--compile-runs", type=int, default=1, help="repetitions of compiles")
    parser.add_argument("--steps", nargs="*", default=["compile", "register", "serve"],
                        choices=["compile", "register", "serve"])  # fmt: skip
    args = parser.parse_args(argv)
    rows: list[tuple[str, str, str]] = []
    forest = model_path()  # fitted (about a minute) and cached before any clock starts
    with tempfile.TemporaryDirectory(prefix="mlgate-coldstart-") as raw:
        work = Path(raw)
        for family in FAMILIES if "compile" in args.steps else ():
            cold, cached = [], []
            for run in range(args.compile_runs):
                cache = work / f"numba-{family}-{run}"
                cold.append(compile_seconds(family, cache))
                cached.append(compile_seconds(family, cache))
            rows.append((f"kernels `{family}`: compile + first predict", _fmt(cold), _fmt(cached)))
        skops_file = work / "rf.skops"
        import joblib
        import skops.io as sio

        sio.dump(joblib.load(forest), skops_file)
        runs = args.runs if "register" in args.steps else 0
        by_joblib = [register_seconds(forest, work / "reg", "--trust-pickle")
                     for _ in range(max(runs, 1))]  # fmt: skip
        by_skops = [register_seconds(skops_file, work / "reg") for _ in range(runs)]
        if "register" in args.steps:
            rows.append(("`mlgate models register` forest .joblib (--trust-pickle)",
                         _fmt_cpu(by_joblib), "no kernels"))  # fmt: skip
            rows.append(
                ("`mlgate models register` forest .skops", _fmt_cpu(by_skops), "no kernels")
            )
        warm_cache = work / "numba-warm"
        subprocess.run(_mlgate("kernels", "warm"), env=_env(NUMBA_CACHE_DIR=str(warm_cache)),
                       cwd=REPO, capture_output=True, check=True)  # fmt: skip
        home = work / "reg"  # the forest registered by the last run above
        for role in ("all", "gateway") if "serve" in args.steps else ():
            warm = [serve_ready_seconds(home, warm_cache, role) for _ in range(args.runs)]
            cold = [serve_ready_seconds(home, work / f"numba-serve-{role}", role)]
            rows.append((f"`mlgate serve --role {role}` until ready (forest)", _fmt_cpu(cold),
                         _fmt_cpu(warm)))  # fmt: skip
        if "serve" in args.steps:  # the same, without the saved runtime (gateway.loading)
            unsaved = [
                serve_ready_seconds(home, warm_cache, "gateway",
                                    XDG_CACHE_HOME=str(work / f"no-runtimes-{run}"))
                for run in range(args.runs)
            ]  # fmt: skip
            rows.append(("`mlgate serve --role gateway`, no saved runtime (compiles the artifact)",
                         "–", _fmt_cpu(unsaved)))  # fmt: skip
    print("| step | empty numba cache | kernels cached |")
    print("|---|---:|---:|")
    for step, cold_text, warm_text in rows:
        print(f"| {step} | {cold_text} | {warm_text} |")
    print(f"\nload average at the end: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
