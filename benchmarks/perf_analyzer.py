"""Triton's ``perf_analyzer`` as a peer load client: where it is, how to get it, how it is run.

The binary ships inside the ``tritonclient`` manylinux wheels up to 2.41
(``tritonclient-2.41.0.data/data/bin/perf_analyzer``). It links ``libb64.so.0d`` (Debian/Ubuntu
package ``libb64-0d``) and ``libcudart.so.12`` (the ``nvidia-cuda-runtime-cu12`` wheel's
``nvidia/cuda_runtime/lib``), though it uses no GPU. ``install`` downloads both wheels with pip
(the one step that needs the package index) and unpacks the binary and the CUDA runtime into
``benchmarks/.perf_analyzer/`` (git-ignored); ``make bench`` runs it first and the gRPC
benchmark then finds the binary there.

    python -m benchmarks.perf_analyzer install     # once; prints the binary's path
    python -m benchmarks.perf_analyzer where       # the binary the benchmarks would use

Its stability rule is the reason for the settings below: a load point is reported once three
consecutive measurement windows agree within ``--stability-percentage`` (max/min of both
throughput and mean latency), else after ``--max-trials`` windows it gives up with "Failed to
obtain stable measurement". On our shared 2-core machine windows swing by more than 2x, so
the old settings (10 s windows, 100 %, 5 trials) gave up; 3 s windows and 10 trials at 100 %
let it find three agreeing windows, and its own per-window figures are kept in the output.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

HOME = Path(__file__).resolve().parent / ".perf_analyzer"
WHEEL = "tritonclient==2.41.0"  # the last wheels that carry perf_analyzer
CUDA_RUNTIME = "nvidia-cuda-runtime-cu12"
WINDOW_MS = 3000
STABILITY_PERCENT = 100
MAX_TRIALS = 10
_LINE = re.compile(r"^Concurrency: (\d+), throughput: ([\d.]+) infer/sec, latency (\d+) usec")
_P99 = re.compile(r"^p99 latency: (\d+) usec")


@dataclass
class Found:
    """A ``perf_analyzer`` binary and the library folder it needs on ``LD_LIBRARY_PATH``."""

    binary: str
    lib_dir: str | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.lib_dir:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(
                p for p in (self.lib_dir, env.get("LD_LIBRARY_PATH", "")) if p
            )
        return env


def find(home: Path = HOME) -> Found | None:
    """``$PERF_ANALYZER``, else ``perf_analyzer`` on the PATH, else the one ``install`` put
    under ``home``; ``None`` if none is there."""
    given = os.environ.get("PERF_ANALYZER") or shutil.which("perf_analyzer")
    if given and os.access(given, os.X_OK):
        return Found(given)
    local = home / "bin" / "perf_analyzer"
    if local.exists() and os.access(local, os.X_OK):
        return Found(str(local), str(home / "lib"))
    return None


def install(home: Path = HOME, *, python: str = sys.executable) -> Found:
    """Download the wheels that carry ``perf_analyzer`` and ``libcudart.so.12``, unpack both
    into ``home``; raise ``RuntimeError`` saying what is missing if it cannot run."""
    found = find(home)
    if found is not None:
        return found
    with tempfile.TemporaryDirectory(prefix="perf-analyzer-") as tmp:
        pip = [python, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
               "--platform", "manylinux1_x86_64", "--python-version", "3.11", "-d", tmp,
               WHEEL, CUDA_RUNTIME]  # fmt: skip
        done = subprocess.run(pip, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pip download {WHEEL} {CUDA_RUNTIME} failed: {done.stderr[-800:]}")
        (home / "bin").mkdir(parents=True, exist_ok=True)
        (home / "lib").mkdir(parents=True, exist_ok=True)
        for wheel in Path(tmp).glob("*.whl"):
            with zipfile.ZipFile(wheel) as z:
                for name in z.namelist():
                    if name.endswith("/bin/perf_analyzer"):
                        target = home / "bin" / "perf_analyzer"
                    elif "/cuda_runtime/lib/libcudart.so" in name:
                        target = home / "lib" / Path(name).name
                    else:
                        continue
                    target.write_bytes(z.read(name))
                    target.chmod(0o755)
    found = find(home)
    if found is None:
        raise RuntimeError(f"{WHEEL} held no bin/perf_analyzer (only linux x86_64 wheels do)")
    check = subprocess.run([found.binary, "--version"], capture_output=True, text=True,
                           env=found.env())  # fmt: skip
    if "error while loading shared libraries" in check.stderr:
        raise RuntimeError(
            f"{found.binary} cannot start: {check.stderr.strip()} (libb64.so.0d: install the "
            "libb64-0d package)"
        )
    return found


@dataclass
class Point:
    """One load point ``perf_analyzer`` reported (mean latency is what it stabilises on)."""

    concurrency: int
    infer_per_s: float
    mean_latency_ms: float
    p99_ms: float | None


def run(
    found: Found,
    *,
    model: str,
    address: str,
    transport: str,
    concurrency: Sequence[int],
    timeout_s: float = 600,
) -> tuple[list[Point], str]:
    """Measure ``model`` at ``address`` over ``transport`` (``http`` or ``grpc``) at each
    concurrency; the points and, when it failed, the last line it printed."""
    points: list[Point] = []
    for c in concurrency:
        argv = [found.binary, "-m", model, "-u", address, "-i", transport,
                "--concurrency-range", f"{c}:{c}", "--measurement-interval", str(WINDOW_MS),
                "--stability-percentage", str(STABILITY_PERCENT),
                "--max-trials", str(MAX_TRIALS)]  # fmt: skip
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                                  env=found.env())  # fmt: skip
        except subprocess.TimeoutExpired:
            return points, f"c={c}: timed out after {timeout_s:.0f} s"
        lines = [line.strip() for line in done.stdout.splitlines()]
        p99 = next((int(m.group(1)) / 1000 for m in map(_P99.match, lines) if m), None)
        found_line = next((m for m in map(_LINE.match, lines) if m), None)
        if done.returncode != 0 or found_line is None:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return points, f"c={c}: {tail[0][:200]}"
        points.append(Point(c, float(found_line.group(2)), int(found_line.group(3)) / 1000, p99))
    return points, ""


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["install", "where"])
    args = ap.parse_args(argv)
    if args.action == "where":
        found = find()
        print(found.binary if found else "not found: python -m benchmarks.perf_analyzer install")
        return 0 if found else 1
    try:
        print(install().binary)
    except RuntimeError as exc:
        print(f"perf_analyzer: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
