"""Side-by-side HTTP load benchmark: mlgate against a naive server and MLServer.

One invocation starts each server in turn on a free loopback port, checks its answers against
scikit-learn's ``predict_proba`` (1e-5), then measures with the same load generator: a
closed-loop concurrency sweep (``wrk``; 1/16/64 connections, 1-row OIP bodies), a 64-row body
point for rows/s, and an open-loop fixed-rate point (latency from each intended start). Beside
each point: the server's CPU (utime+stime of its process tree). Prints a Markdown table and
writes it to the "## HTTP serving" section of ``benchmarks/RESULTS.md``.

    .venv/bin/python -m benchmarks.http_bench                      # everything, ~10 min
    .venv/bin/python -m benchmarks.http_bench --targets naive-sklearn,mlserver --duration 5
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from benchmarks import asyncio_load, pyspy, server_metrics, workload, wrk_load
from benchmarks.bench_report import as_json, load_average, render_report, write_section
from benchmarks.proc import machine_busy_seconds
from benchmarks.targets import DEFAULT_TARGETS, TARGETS, Target

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from benchmarks.load_result import LoadResult
    from benchmarks.proc import ServerProcess
    from benchmarks.server_metrics import ServerView

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TOLERANCE = 1e-5


@dataclass
class Point:
    """One measured load point of one server."""

    target: str
    load: str
    result: LoadResult | None = None
    cpu_s: float = 0.0
    wall_s: float = 0.0
    machine_busy_s: float = 0.0
    server_view: ServerView | None = None
    note: str = ""

    @property
    def machine_cores(self) -> float:
        """Cores busy on the whole machine: server + load generator + everyone else."""
        return self.machine_busy_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_cores(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        if self.result is None or self.result.requests == 0:
            return float("nan")
        return 1e3 * self.cpu_s / self.result.requests


@dataclass
class Bodies:
    """Request bodies (one JSON document a line) and the rows they carry."""

    rows: list[np.ndarray]
    encoded: list[bytes]
    file: Path

    @classmethod
    def make(cls, rows: np.ndarray, *, per_request: int, file: Path) -> Bodies:
        blocks = [rows[i : i + per_request] for i in range(0, len(rows), per_request)]
        encoded = [workload.oip_body_bytes(b) for b in blocks]
        file.write_bytes(b"\n".join(encoded) + b"\n")
        return cls(rows=blocks, encoded=encoded, file=file)


@dataclass
class Config:
    targets: list[str]
    concurrency: list[int]
    duration_s: float
    warmup_s: float
    rate: float
    rate_duration_s: float
    big_rows: int
    big_concurrency: int
    timeout_s: float
    generator: str
    profile: str | None
    profile_s: int
    workdir: Path
    extra: dict[str, Any] = field(default_factory=dict)


def verify(server: ServerProcess, target: Target, model: Any, bodies: Sequence[Bodies]) -> str:
    """Check the server's ``predict_proba`` against scikit-learn; '' when it agrees."""
    url = server.base_url + target.infer_path()
    worst = 0.0
    with httpx.Client(timeout=30.0) as client:
        for b in bodies:
            for rows, body in list(zip(b.rows, b.encoded, strict=True))[:8]:
                # a new connection each time, so that with --workers N every process is asked;
                # each loads the model itself, and one may be ready while another still loads
                headers = {"Content-Type": "application/json", "Connection": "close"}
                resp = client.post(url, content=body, headers=headers)
                deadline = time.monotonic() + 90
                while resp.status_code == 503 and time.monotonic() < deadline:
                    time.sleep(0.5)
                    resp = client.post(url, content=body, headers=headers)
                if resp.status_code != 200:
                    return f"answer check: HTTP {resp.status_code}: {resp.text[:300]}"
                try:
                    got = workload.proba_from_oip(resp.json(), n_rows=len(rows))
                except (ValueError, KeyError, TypeError) as exc:
                    return f"answer check: unreadable answer ({exc}): {resp.text[:300]}"
                want = model.predict_proba(rows)
                if got.shape != want.shape:
                    return f"answer check: shape {list(got.shape)} != {list(want.shape)}"
                worst = max(worst, float(np.max(np.abs(got - want))))
    if worst > TOLERANCE:
        return f"answer check: max |diff| {worst:.2e} > {TOLERANCE:.0e}"
    return ""


def _closed(
    cfg: Config, server: ServerProcess, path: str, bodies: Bodies, *, connections: int, dur: float
) -> LoadResult:
    rows = len(bodies.rows[0])
    if cfg.generator == "wrk":
        return wrk_load.run_wrk(
            server.base_url,
            path,
            bodies_file=bodies.file,
            lua_file=cfg.workdir / "post.lua",
            connections=connections,
            duration_s=dur,
            timeout_s=cfg.timeout_s,
            rows_per_request=rows,
        )
    host, port = server.base_url.removeprefix("http://").split(":")
    requests = [asyncio_load.http_request(host, int(port), path, b) for b in bodies.encoded]
    return asyncio_load.closed_loop(
        host,
        int(port),
        requests,
        connections=connections,
        duration_s=dur,
        timeout_s=cfg.timeout_s,
        rows_per_request=rows,
    )


def _measure(
    server: ServerProcess, point: Point, run: Callable[[], LoadResult], *, metrics: str | None
) -> Point:
    before = server_metrics.scrape(server.base_url + metrics) if metrics else {}
    cpu0, busy0, t0 = server.cpu_seconds(), machine_busy_seconds(), time.monotonic()
    try:
        point.result = run()
    except (RuntimeError, OSError, ValueError) as exc:
        point.note = f"load failed: {exc}"[:300]
    point.wall_s = time.monotonic() - t0
    point.cpu_s = server.cpu_seconds() - cpu0
    point.machine_busy_s = machine_busy_seconds() - busy0
    if metrics and before:
        after = server_metrics.scrape(server.base_url + metrics)
        point.server_view = server_metrics.ServerView.between(before, after)
    return point


def _profile(cfg: Config, server: ServerProcess, path: str, one: Bodies) -> str:
    out = cfg.workdir / f"profile-{server.name}.txt"
    svg = cfg.workdir / f"profile-{server.name}.svg"
    spy = pyspy.record(server.pid, out, duration_s=cfg.profile_s, fmt="raw")
    _closed(cfg, server, path, one, connections=64, dur=cfg.profile_s + 1)
    _, err = spy.communicate(timeout=cfg.profile_s + 60)
    if not out.exists():
        return f"py-spy failed: {err.decode(errors='replace')[-500:]}"
    spy = pyspy.record(server.pid, svg, duration_s=max(3, cfg.profile_s // 2), fmt="flamegraph")
    _closed(cfg, server, path, one, connections=64, dur=max(3, cfg.profile_s // 2) + 1)
    spy.communicate(timeout=cfg.profile_s + 60)
    head = f"py-spy, {cfg.profile_s} s at c=64 (raw: {out}, flamegraph: {svg})\n\n"
    return head + pyspy.summarise(out.read_text())


def _plan(
    cfg: Config, server: ServerProcess, path: str, one: Bodies, big: Bodies
) -> list[tuple[str, Callable[[], LoadResult]]]:
    """The load points of one server, in order: (label, run)."""
    plan: list[tuple[str, Callable[[], LoadResult]]] = []
    for c in cfg.concurrency:
        plan.append(
            (f"c={c}", partial(_closed, cfg, server, path, one, connections=c, dur=cfg.duration_s))
        )
    if cfg.big_rows:
        plan.append(
            (
                f"{cfg.big_rows} rows, c={cfg.big_concurrency}",
                partial(
                    _closed,
                    cfg,
                    server,
                    path,
                    big,
                    connections=cfg.big_concurrency,
                    dur=cfg.duration_s,
                ),
            )
        )
    if cfg.rate:
        host, port = server.base_url.removeprefix("http://").split(":")
        reqs = [asyncio_load.http_request(host, int(port), path, b) for b in one.encoded]
        run = partial(
            asyncio_load.open_loop,
            host,
            int(port),
            reqs,
            rate=cfg.rate,
            duration_s=cfg.rate_duration_s,
            timeout_s=cfg.timeout_s,
        )
        plan.append((f"{cfg.rate:g} req/s offered", run))
    return plan


def run_target(
    cfg: Config, target: Target, model: Any, model_file: Path, one: Bodies, big: Bodies
) -> tuple[list[Point], str]:
    """Start, check, warm up and measure one server; always stop it."""
    points: list[Point] = []
    profile = ""
    try:
        server = target.make(cfg.workdir, model_file)
        t0 = time.monotonic()
        server.start(timeout_s=180)
    except (RuntimeError, OSError) as exc:
        print(f"[{target.name}] not run: {exc}", file=sys.stderr)
        return [Point(target.name, "start", note=f"not run: {_last_words(str(exc))}")], ""
    startup = time.monotonic() - t0
    print(f"[{target.name}] ready in {startup:.1f} s at {server.base_url}", file=sys.stderr)
    try:
        problem = verify(server, target, model, [one, big]) if target.predicts else ""
        if problem:
            return [Point(target.name, "check", note=problem)], ""
        path = target.infer_path()
        _closed(cfg, server, path, one, connections=16, dur=cfg.warmup_s)
        for label, run in _plan(cfg, server, path, one, big):
            p = _measure(server, Point(target.name, label), run, metrics=target.metrics_path)
            points.append(p)
            print(f"[{target.name}] {p.load}: {_brief(p)}", file=sys.stderr)
        if cfg.profile == target.name:
            profile = _profile(cfg, server, path, one)
    finally:
        server.stop()
    return points, profile


def _last_words(message: str) -> str:
    """The first line of an error and, when it quotes a log, the log's last line."""
    lines = [line for line in message.splitlines() if line.strip()]
    if len(lines) <= 2:
        return " ".join(lines)
    return f"{lines[0]} … {lines[-1]}"


def _brief(p: Point) -> str:
    r = p.result
    if r is None:
        return p.note
    return (
        f"{r.rps:.0f} req/s p50 {r.p50_ms:.2f} ms p99 {r.p99_ms:.2f} ms "
        f"err {r.errors} to {r.timeouts} cpu {p.cpu_cores:.2f} machine {p.machine_cores:.2f}"
    )


def parse_args(argv: Sequence[str] | None) -> Config:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help=f"comma-separated, from {','.join(TARGETS)}",
    )
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per point")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of c=16 before the sweep")
    ap.add_argument("--rate", type=float, default=500.0, help="open-loop req/s (0: skip)")
    ap.add_argument("--rate-duration", type=float, default=None, help="default: --duration")
    ap.add_argument("--big-rows", type=int, default=64, help="rows per body, big point (0: skip)")
    ap.add_argument("--big-concurrency", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    ap.add_argument("--generator", choices=("auto", "wrk", "asyncio"), default="auto")
    ap.add_argument("--profile", default=None, help="py-spy this target at c=64 after its sweep")
    ap.add_argument("--profile-seconds", type=int, default=10)
    ap.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory")
    ap.add_argument("--results", type=Path, default=RESULTS, help="Markdown file to update")
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md")
    ap.add_argument("--json", type=Path, default=None, help="also write raw points as JSON")
    a = ap.parse_args(argv)
    unknown = [t for t in a.targets.split(",") if t not in TARGETS]
    if unknown:
        ap.error(f"--targets: unknown {unknown}; expected names from {list(TARGETS)}")
    generator = a.generator
    if generator == "auto":
        generator = "wrk" if wrk_load.wrk_available() else "asyncio"
    elif generator == "wrk" and not wrk_load.wrk_available():
        ap.error("--generator wrk: wrk is not installed (apt-get install -y wrk)")
    return Config(
        targets=a.targets.split(","),
        concurrency=[int(c) for c in a.concurrency.split(",")],
        duration_s=a.duration,
        warmup_s=a.warmup,
        rate=a.rate,
        rate_duration_s=a.rate_duration or a.duration,
        big_rows=a.big_rows,
        big_concurrency=a.big_concurrency,
        timeout_s=a.timeout,
        generator=generator,
        profile=a.profile,
        profile_s=a.profile_seconds,
        workdir=a.workdir or Path(tempfile.mkdtemp(prefix="mlgate-bench-")),
        extra={"results": a.results, "write": not a.no_write, "json": a.json},
    )


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    wrk_load.write_lua(cfg.workdir / "post.lua")
    model_file = workload.model_path()
    model = workload.load_model()
    n_big = max(cfg.big_rows, 1) * 32
    rows = workload.request_rows(256 + n_big)
    one = Bodies.make(rows[:256], per_request=1, file=cfg.workdir / "bodies-1.txt")
    big = Bodies.make(
        rows[256:], per_request=max(cfg.big_rows, 1), file=cfg.workdir / "bodies-big.txt"
    )
    started = time.time()
    cfg.extra["load_start"] = load_average()
    points: list[Point] = []
    profiles: dict[str, str] = {}
    for name in cfg.targets:
        print(f"[{name}] starting", file=sys.stderr)
        pts, prof = run_target(cfg, TARGETS[name], model, model_file, one, big)
        points += pts
        if prof:
            profiles[name] = prof
    command = shlex.join(
        [".venv/bin/python", "-m", "benchmarks.http_bench", *(argv or sys.argv[1:])]
    )
    report = render_report(
        points, cfg=cfg, command=command, started=started, targets=TARGETS, profiles=profiles
    )
    print(report)
    if cfg.extra["write"]:
        write_section(cfg.extra["results"], "HTTP serving", report)
        print(f"written to {cfg.extra['results']}", file=sys.stderr)
    if cfg.extra["json"]:
        cfg.extra["json"].write_text(json.dumps(as_json(points), indent=2))
    print(f"work files in {cfg.workdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
