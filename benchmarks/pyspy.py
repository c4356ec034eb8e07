"""Profile a running server with py-spy and summarise where its samples go."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def py_spy() -> str | None:
    exe = VENV_BIN / "py-spy"
    return str(exe) if exe.exists() else shutil.which("py-spy")


def record(
    pid: int, out: Path, *, duration_s: int, fmt: str = "raw", rate: int = 100
) -> subprocess.Popen[bytes]:
    """Start ``py-spy record`` on ``pid`` and its children; the caller waits for it."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    argv = [exe, "record", "--pid", str(pid), "--duration", str(duration_s), "--rate", str(rate)]
    argv += ["--subprocesses", "--nonblocking", "--format", fmt, "--output", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


AREAS = (  # (prefix of the file path py-spy prints, area); first match wins
    ("gateway/runtimes/", "model runtime (compiled kernels and their Python wrapper)"),
    ("gateway/", "mlgate gateway code (codecs, batcher, routing, log, metrics)"),
    ("mlserver", "MLServer code"),
    ("sklearn/", "scikit-learn"),
    ("numba/", "model runtime (compiled kernels and their Python wrapper)"),
    ("litestar/", "Litestar (routing, middleware, request/response)"),
    ("uvicorn/", "ASGI server (uvicorn, httptools)"),
    ("granian/", "HTTP server (granian)"),
    ("starlette/", "Starlette/FastAPI"),
    ("fastapi/", "Starlette/FastAPI"),
    ("pydantic", "pydantic"),
    ("msgspec/", "msgspec"),
    ("polars/", "prediction log (polars)"),
    ("numpy/", "numpy (array conversion, checks)"),
    ("prometheus_client/", "prometheus-client"),
    ("asyncio/", "event loop (asyncio/uvloop internals)"),
    ("concurrent/", "thread pool hand-off (concurrent.futures, threading)"),
    ("threading", "thread pool hand-off (concurrent.futures, threading)"),
    ("queue", "thread pool hand-off (concurrent.futures, threading)"),
)


def _frame(frame: str) -> tuple[str, str]:
    """``"function (path/file.py:line)"`` -> ``("function (path/file.py)", "path/file.py")``."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0] if where else ""
    return (f"{name} ({path})" if path else name), path


def _area(name: str, path: str) -> str:
    if "Runtime.predict " in name:  # py-spy sometimes prints a bare file name for it
        return AREAS[0][1]
    for prefix, area in AREAS:
        if path.startswith(prefix) or f"/{prefix}" in path:
            return area
    return "other"


def _table(title: str, counts: Counter[str], total: int, top: int) -> list[str]:
    lines = ["", f"| {title} | % of samples |", "|---|---:|"]
    return lines + [f"| {name} | {100 * n / total:.1f} |" for name, n in counts.most_common(top)]


def summarise(raw: str, *, top: int = 12) -> str:
    r"""Markdown from a py-spy ``raw`` profile: samples by thread kind, by area, by function.

    Each sample is charged to the function on top of its stack (self time); areas group those
    functions by package. Threads other than the main (event-loop) thread are "worker threads".

    >>> raw = (
    ...     'process 1:"x";<module> (mlgate:6);run (uvicorn/main.py:1);send (uvicorn/h.py:2) 3\n'
    ...     'process 1:"x";Thread._bootstrap (threading.py:1);predict (gateway/runtimes/r.py:9) 1'
    ... )
    >>> print(summarise(raw, top=2))
    4 samples of busy threads (idle threads excluded)
    <BLANKLINE>
    | thread | % of samples |
    |---|---:|
    | main thread (event loop) | 75.0 |
    | worker threads | 25.0 |
    <BLANKLINE>
    | area | % of samples |
    |---|---:|
    | ASGI server (uvicorn, httptools) | 75.0 |
    | model runtime (compiled kernels and their Python wrapper) | 25.0 |
    <BLANKLINE>
    | function (self) | % of samples |
    |---|---:|
    | send (uvicorn/h.py) | 75.0 |
    | predict (gateway/runtimes/r.py) | 25.0 |
    """
    own: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";") if " (" in f and not f.startswith("process ")]
        if not frames:
            continue
        count = int(count_text)
        total += count
        name, path = frames[-1]
        own[name] += count
        areas[_area(name, path)] += count
        worker = any(f[0].startswith("Thread._bootstrap ") for f in frames[:2])
        threads["worker threads" if worker else "main thread (event loop)"] += count
    if total == 0:
        return "no samples"
    lines = [f"{total} samples of busy threads (idle threads excluded)"]
    lines += _table("thread", threads, total, top)
    lines += _table("area", areas, total, top)
    lines += _table("function (self)", own, total, top)
    return "\n".join(lines)
