"""Markdown for ``http_bench``: the table, the targets of issue 4, and the RESULTS.md section."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from benchmarks.http_bench import Config, Point
    from benchmarks.targets import Target

HEADER = (
    "| server | load | req/s (2xx) | rows/s | p50 ms | p99 ms | errors | timeouts "
    "| server CPU (cores) | CPU ms/req | load gen. CPU (cores) | machine busy (cores) "
    "| rows/batch | queue / compute ms |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _fmt(value: float, digits: int = 1) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:,.{digits}f}"


def _cell(text: str, limit: int = 300) -> str:
    """One table cell: a single line, pipes escaped, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return flat.replace("|", "\\|")


def table(points: Sequence[Point]) -> str:
    rows = [HEADER]
    for p in points:
        r = p.result
        if r is None:
            rows.append(f"| {p.target} | {p.load} | {_cell(p.note)} |" + " – |" * 11)
            continue
        rows.append(
            f"| {p.target} | {p.load} | {_fmt(r.ok_rps, 0)} | {_fmt(r.rows_per_s, 0)} "
            f"| {_fmt(r.p50_ms, 2)} | {_fmt(r.p99_ms, 1)} | {r.errors} | {r.timeouts} "
            f"| {_fmt(p.cpu_cores, 2)} | {_fmt(p.cpu_ms_per_request, 2)} "
            f"| {_fmt(r.generator_cores, 2)} | {_fmt(p.machine_cores, 2)} | {_view(p)} |"
        )
    return "\n".join(rows)


def _view(p: Point) -> str:
    """The server's own view (mlgate /metrics): mean rows per batch, queue / compute ms."""
    v = p.server_view
    if v is None:
        return "– | –"
    return f"{_fmt(v.rows_per_batch)} | {_fmt(v.queue_ms, 2)} / {_fmt(v.compute_ms, 2)}"


def _find(points: Sequence[Point], target: str, load: str) -> Point | None:
    for p in points:
        if p.target == target and p.load == load and p.result is not None:
            return p
    return None


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def targets_check(points: Sequence[Point]) -> list[str]:
    """The issue's targets, each with the measured figure and whether it is met."""
    out: list[str] = []
    ours, peer = _find(points, "mlgate", "c=64"), _find(points, "mlserver", "c=64")
    if ours and peer and ours.result and peer.result:
        ratio = ours.result.ok_rps / max(peer.result.ok_rps, 1e-9)
        p99 = ours.result.p99_ms / max(peer.result.p99_ms, 1e-9)
        out.append(
            f"- c=64 throughput: mlgate {ours.result.ok_rps:,.0f} req/s vs MLServer "
            f"{peer.result.ok_rps:,.0f} = {ratio:.1f}× (target ≥ 10×): {_verdict(ratio >= 10)}"
        )
        cpu = peer.cpu_ms_per_request / max(ours.cpu_ms_per_request, 1e-9)
        out.append(
            f"- c=64 server CPU per request (not a target; it does not depend on how the shared "
            f"cores were divided): mlgate {ours.cpu_ms_per_request:.2f} ms vs MLServer "
            f"{peer.cpu_ms_per_request:.2f} ms = {cpu:.1f}× less"
        )
        out.append(
            f"- c=64 p99: mlgate {ours.result.p99_ms:.1f} ms vs MLServer "
            f"{peer.result.p99_ms:.1f} ms = {p99:.2f} of it (target ≤ 0.20): "
            f"{_verdict(p99 <= 0.2)}"
        )
    else:
        out.append("- c=64 vs MLServer: not measured (mlgate or MLServer did not run)")
    w2 = _find(points, "mlgate-w2", "c=64")
    if w2 and peer and w2.result and peer.result:
        ratio = w2.result.ok_rps / max(peer.result.ok_rps, 1e-9)
        p99 = w2.result.p99_ms / max(peer.result.p99_ms, 1e-9)
        out.append(
            f"- the same with `--workers 2` (MLServer too runs two processes: its HTTP server "
            f"and one inference worker): {w2.result.ok_rps:,.0f} req/s = {ratio:.1f}× "
            f"({_verdict(ratio >= 10)}), p99 {p99:.2f} of MLServer's ({_verdict(p99 <= 0.2)})"
        )
    c1 = _find(points, "mlgate", "c=1")
    if c1 and c1.result:
        out.append(
            f"- c=1 p50: mlgate {c1.result.p50_ms:.2f} ms (target ≤ 1 ms): "
            f"{_verdict(c1.result.p50_ms <= 1.0)}"
        )
    else:
        out.append("- c=1 p50: not measured (mlgate did not run)")
    off = _find(points, "mlgate-nobatch", "c=64")
    if ours and off and ours.result and off.result:
        out.append(
            f"- batching on vs off at c=64: {ours.result.ok_rps:,.0f} vs "
            f"{off.result.ok_rps:,.0f} req/s "
            f"({ours.result.ok_rps / max(off.result.ok_rps, 1e-9):.1f}×), p99 "
            f"{ours.result.p99_ms:.1f} vs {off.result.p99_ms:.1f} ms"
        )
    else:
        out.append("- batching on vs off: not measured (mlgate or mlgate-nobatch did not run)")
    return out


def load_average() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def _wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "wrk (not installed)"
    return out.split(" Copyright")[0].strip() or "wrk"


def render_report(
    points: Sequence[Point],
    *,
    cfg: Config,
    command: str,
    started: float,
    targets: Mapping[str, Target],
    profiles: Mapping[str, str],
) -> str:
    """The whole "HTTP serving" section body (without its heading)."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
    gen = (
        f"{_wrk_version()}, 2 threads (1 at c=1), keep-alive, Lua script cycling 256 distinct "
        "1-row bodies"
        if cfg.generator == "wrk"
        else "asyncio raw-socket closed-loop generator (wrk not installed)"
    )
    lines = [
        f"Run {when}, {_machine()}; load average (1, 5, 15 min) {cfg.extra['load_start']} at "
        f"the start, {load_average()} at the end. **The 2 cores were shared with other "
        "engineers' processes "
        "and with the load generator itself: compare ratios within this table, not absolute "
        "figures.**",
        "",
        "```",
        command,
        "```",
        "",
        f"Closed-loop points (`c=N`): {gen}; {cfg.duration_s:g} s each after a "
        f"{cfg.warmup_s:g} s warm-up, {cfg.timeout_s:g} s request timeout. Open-loop point "
        f"(`req/s offered`): asyncio generator at a fixed arrival rate for "
        f"{cfg.rate_duration_s:g} s, latency measured from each request's intended start "
        "(no coordinated omission), at most 256 connections. Server CPU = utime+stime of the "
        "server's whole process tree from /proc, over the point's wall time; load gen. CPU = "
        "the load generator's own CPU (getrusage); machine busy = all cores' busy time from "
        "/proc/stat (server + load generator + everyone else). "
        "rows/batch and queue / compute ms: means over the point from mlgate's own /metrics "
        "histograms. Every server's "
        "answers were checked against scikit-learn `predict_proba` (max abs diff ≤ 1e-5) "
        "before it was measured.",
        "",
        table(points),
        "",
        "Targets (issue 4):",
        "",
        *targets_check(points),
        "",
        "Servers:",
        "",
        *(f"- `{n}`: {targets[n].description}" for n in cfg.targets),
    ]
    for name, text in profiles.items():
        lines += ["", f"Profile of `{name}` under c=64 load:", "", text]
    return "\n".join(lines) + "\n"


def write_section(path: Path, title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section of a Markdown file, leaving the rest."""
    heading = f"## {title}"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    new = [heading, "", *body.rstrip("\n").splitlines()]
    if start is None:
        out = [*lines, "", *new] if lines else new
    else:
        end = next(
            (j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines)
        )
        tail = lines[end:]
        out = [*lines[:start], *new, *([""] + tail if tail else [])]
    path.write_text("\n".join(out).rstrip("\n") + "\n")


def as_json(points: Sequence[Point]) -> list[dict[str, Any]]:
    return [
        {"target": p.target, "load": p.load, "note": p.note, "cpu_s": p.cpu_s, "wall_s": p.wall_s}
        | (p.result.as_dict() if p.result else {})
        for p in points
    ]
