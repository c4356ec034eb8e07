"""The scaled-out topology on this machine: throughput of 1 vs 2 gateway processes, route
propagation delay over many changes, and what S3 costs a registration and a model load.

    .venv/bin/python -m benchmarks.bench_topology [--duration 10] [--changes 20] [--write]

Parts run as separate processes on loopback (tests/e2e/topology.py): moto's S3 server, two
``mlgate serve --role gateway`` configured by MLGATE_REGISTRY / MLGATE_LOGS alone. Load comes
from ``wrk`` (one per gateway, run at the same time). Propagation is measured from a route's
``updated_at`` to the report each gateway writes right after installing it. The S3 figures
compare the same calls on a local registry and on moto's server (not AWS: no network latency).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.wrk_load import run_wrk, write_lua
from registry import Registry, set_weight, start_rollout
from tests.e2e.topology import Topology
from tests.gateway.conftest import fit_iris, iris

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Topology"


def _bodies(path: Path, X: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(512):
        row = X[rng.integers(len(X))]
        tensor = {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": row.tolist()}
        lines.append(json.dumps({"inputs": [tensor]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def throughput(topology: Topology, work: Path, duration_s: float, connections: int) -> dict:
    """requests/s through gateway 1 alone, then through both at once (one wrk each)."""
    X, _ = iris()
    bodies, lua = _bodies(work / "bodies.txt", X), write_lua(work / "post.lua")

    def load(url: str) -> Any:
        return run_wrk(url, "/v2/models/iris/infer", bodies_file=bodies, lua_file=lua,
                       connections=connections, duration_s=duration_s, threads=1)  # fmt: skip

    load(topology.gateways[0])  # warm-up (first batches, connections)
    one = load(topology.gateways[0])
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(load, topology.gateways[:2]))
    return {
        "one_rps": one.ok_rps,
        "one_p99_ms": one.p99_ms,
        "one_errors": one.errors,
        "two_rps": sum(r.ok_rps for r in both),
        "two_p99_ms": max(r.p99_ms for r in both),
        "two_errors": sum(r.errors for r in both),
    }


def propagation(topology: Topology, reg: Registry, changes: int) -> list[float]:
    """For each of ``changes`` canary weight changes: seconds until the last gateway has it."""
    X, _ = iris()
    v2 = reg.register("iris", fit_iris(C=0.05), reference=X).version
    topology.propagation_s(reg, "iris", start_rollout(reg, "iris", v2, weight=10))
    delays = []
    for i in range(changes):
        route = set_weight(reg, "iris", 20.0 if i % 2 == 0 else 10.0)
        delays.append(max(topology.propagation_s(reg, "iris", route)))
    return delays


def s3_overhead(s3_registry_url: str, root: Path, repeats: int = 5) -> dict:
    """Median seconds of a registration and of a model load, local registry vs S3."""
    X, _ = iris()
    model = fit_iris(C=0.2)
    out = {}
    for where, url in (("local", str(root / "local-registry")), ("s3", s3_registry_url)):
        reg = Registry(url)
        register, load = [], []
        for i in range(repeats):
            start = time.perf_counter()
            mv = reg.register(f"overhead{i}", model, reference=X)
            register.append(time.perf_counter() - start)
            start = time.perf_counter()
            reg.load_model(reg.get(mv.name, mv.version))
            load.append(time.perf_counter() - start)
        out[where] = {"register_s": statistics.median(register),
                      "load_s": statistics.median(load)}  # fmt: skip
    return out


def run(duration_s: float, changes: int, connections: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="mlgate-topology-") as tmp:
        work = Path(tmp)
        topology = Topology(work, gateways=2, monitor=False, flush_s=5.0, poll_interval_s=1.0)
        topology.start()
        try:
            reg = Registry(topology.registry_url)
            X, _ = iris()
            reg.register("iris", fit_iris(), reference=X)
            topology.start_gateways()
            topology.wait_ready()
            result: dict[str, Any] = {"throughput": throughput(topology, work, duration_s,
                                                               connections)}  # fmt: skip
            delays = propagation(topology, reg, changes)
            result["propagation_s"] = delays
            result["gateway_load_s"] = topology.load_seconds("iris")
            result["s3"] = s3_overhead(f"s3://{topology.bucket}/overhead", work)
        finally:
            topology.stop()
    result["load_average"] = os.getloadavg()
    return result


def report(result: dict, *, duration_s: float, changes: int, connections: int) -> str:
    t, s3 = result["throughput"], result["s3"]
    delays = sorted(result["propagation_s"])
    load1, load5, _ = result["load_average"]
    at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = (f".venv/bin/python -m benchmarks.bench_topology --duration {duration_s:g} "
               f"--changes {changes} --connections {connections} --write")  # fmt: skip
    lines = [
        SECTION,
        "",
        f"Measured {at} with `{command}` on this 2-core machine, shared with other jobs (load "
        f"average {load1:.1f} / {load5:.1f} at the end: absolute figures vary run to run). "
        "Separate processes on loopback: moto's S3 server, two `mlgate serve --role gateway` "
        "(uvicorn, 1 worker each), configured by MLGATE_REGISTRY / MLGATE_LOGS only; iris "
        "logistic regression, one row per OIP request, `wrk` with "
        f"{connections} connections per gateway for {duration_s:g} s.",
        "",
        "| what | 1 gateway | 2 gateways |",
        "|---|---:|---:|",
        f"| requests/s (2xx) | {t['one_rps']:,.0f} | {t['two_rps']:,.0f} "
        f"(x{t['two_rps'] / max(t['one_rps'], 1e-9):.2f}) |",
        f"| p99 latency | {t['one_p99_ms']:.1f} ms | {t['two_p99_ms']:.1f} ms |",
        f"| errors | {t['one_errors']} | {t['two_errors']} |",
        "",
        f"Route propagation over {len(delays)} canary weight changes (route `updated_at` to the "
        "last gateway's report of the new generation; the default `poll_interval_s` = 1.0): "
        f"p50 {statistics.median(delays):.2f} s, max {delays[-1]:.2f} s.",
        "",
        "| S3 overhead (median of 5) | local registry | S3 (moto server) |",
        "|---|---:|---:|",
        f"| registration (skops + reference + its predictions) | {s3['local']['register_s']:.3f} s "
        f"| {s3['s3']['register_s']:.3f} s |",
        f"| model load (manifest + artifact + hash + skops) | {s3['local']['load_s']:.3f} s "
        f"| {s3['s3']['load_s']:.3f} s |",
        "",
        "Two gateway processes on two shared cores cannot double the throughput: the load "
        "generator and the S3 server use the same cores. On a machine with a core per "
        "gateway the gateways share nothing but the store, which they read once per poll.",
        "",
    ]
    return "\n".join(lines)


def write(text: str) -> None:
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if SECTION in current:
        head, _, rest = current.partition(SECTION)
        tail = rest.split("\n## ", 1)
        current = head + text + ("\n## " + tail[1] if len(tail) > 1 else "")
    else:
        current = current.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load point")
    parser.add_argument("--changes", type=int, default=20, help="route changes to time")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections each")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    result = run(args.duration, args.changes, args.connections)
    print(json.dumps(result, indent=2, default=str))
    text = report(result, duration_s=args.duration, changes=args.changes,
                  connections=args.connections)  # fmt: skip
    print(text)
    if args.write:
        write(text)


if __name__ == "__main__":
    main()
