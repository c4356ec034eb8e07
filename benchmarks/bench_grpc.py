"""OIP over gRPC beside HTTP: mlgate against MLServer, one client per transport, one run.

Both servers serve the reference model (``benchmarks.workload``, a 100-tree random forest) with
the same batching as the HTTP table (mlgate's defaults; MLServer adaptive batching 32 rows /
2 ms). Each is checked against scikit-learn's ``predict_proba`` over gRPC first, then measured
closed-loop at each concurrency with 1-row requests: over gRPC by this module's ``grpc.aio``
client (typed ``fp32_contents``, which every OIP server reads), over HTTP by the harness's
asyncio client (``benchmarks.asyncio_load``). Writes the "## gRPC serving" section of
``benchmarks/RESULTS.md``.

Each row also gives the server's CPU time per answered request (its processes' user + system
time over the load point, from ``/proc``), the figure that decides throughput on a machine
whose cores the client shares.

Triton's ``perf_analyzer`` is measured as a peer client against mlgate over both transports
when it is found (``benchmarks.perf_analyzer``: ``$PERF_ANALYZER``, the PATH, or where
``python -m benchmarks.perf_analyzer install`` puts it, which ``make bench`` runs first).

    .venv/bin/python -m benchmarks.bench_grpc                     # mlgate and MLServer, ~2 min
    .venv/bin/python -m benchmarks.bench_grpc --targets mlgate --duration 5 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np

from benchmarks import asyncio_load, mlserver_peer, perf_analyzer, workload
from benchmarks.bench_report import load_average, write_section
from benchmarks.load_result import LoadResult, cpu_seconds
from benchmarks.proc import ServerProcess, free_port, tree_cpu_seconds
from benchmarks.targets import TARGETS
from gateway.grpc import oip_pb2 as pb

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
INFER = "/inference.GRPCInferenceService/ModelInfer"
TOLERANCE = 1e-5


@dataclass
class Served:
    """A started server: its process, HTTP base URL and gRPC address."""

    name: str
    process: ServerProcess
    grpc_address: str


def infer_request(rows: np.ndarray, model: str = workload.MODEL_NAME) -> pb.ModelInferRequest:
    """A ``ModelInferRequest`` of ``rows`` as one FP32 tensor in typed contents."""
    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name=workload.INPUT_NAME, datatype="FP32", shape=rows.shape)
    tensor.contents.fp32_contents.extend(rows.ravel().tolist())
    return request


def proba(response: pb.ModelInferResponse, n_rows: int) -> np.ndarray:
    """``predict_proba`` of a response, from typed contents or raw bytes."""
    for i, output in enumerate(response.outputs):
        if output.name != "predict_proba":
            continue
        if response.raw_output_contents:
            flat = np.frombuffer(response.raw_output_contents[i], dtype="<f8")
        elif output.datatype == "FP32":
            flat = np.array(output.contents.fp32_contents, dtype=np.float64)
        else:
            flat = np.array(output.contents.fp64_contents, dtype=np.float64)
        return flat.reshape(n_rows, -1)
    raise ValueError(f"no predict_proba among {[o.name for o in response.outputs]}")


def verify(address: str, model: Any) -> str:
    """'' when the server's gRPC answers agree with scikit-learn within ``TOLERANCE``."""
    rows = workload.request_rows(16, seed=7)
    with grpc.insecure_channel(address) as channel:
        rpc = channel.unary_unary(
            INFER,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                response = rpc(infer_request(rows), timeout=30)
                break
            except grpc.RpcError as exc:
                if time.monotonic() > deadline:
                    return f"answer check: {exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
                time.sleep(0.5)
    worst = float(np.max(np.abs(proba(response, len(rows)) - model.predict_proba(rows))))
    return "" if worst <= TOLERANCE else f"answer check: max |diff| {worst:.2e}"


async def _closed_loop(
    address: str, bodies: list[bytes], *, concurrency: int, duration_s: float, timeout_s: float
) -> tuple[list[float], int, int, float]:
    latencies: list[float] = []
    errors = timeouts = 0
    async with grpc.aio.insecure_channel(address) as channel:
        rpc = channel.unary_unary(INFER)  # bytes in, bytes out: no client-side (de)serialising
        await rpc(bodies[0], timeout=timeout_s)  # connect before the clock starts
        start = time.perf_counter()
        stop = start + duration_s

        async def user(offset: int) -> None:
            nonlocal errors, timeouts
            i = offset
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    await rpc(bodies[i % len(bodies)], timeout=timeout_s)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                        timeouts += 1
                    else:
                        errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                i += 1

        await asyncio.gather(*(user(k * 7) for k in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, errors, timeouts, elapsed


def grpc_closed_loop(
    address: str,
    requests: Sequence[pb.ModelInferRequest],
    *,
    concurrency: int,
    duration_s: float,
    timeout_s: float = 10.0,
) -> LoadResult:
    """``concurrency`` callers on one HTTP/2 channel, each sending its next request once the
    last one answered, for ``duration_s``."""
    bodies = [r.SerializeToString() for r in requests]
    cpu0 = cpu_seconds(resource.RUSAGE_SELF)
    coro = _closed_loop(
        address, bodies, concurrency=concurrency, duration_s=duration_s, timeout_s=timeout_s
    )
    latencies, errors, timeouts, elapsed = asyncio.run(coro)
    cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu0
    ms = np.array(latencies) * 1000 if latencies else np.zeros(1)
    return LoadResult(
        generator="grpc-aio-closed",
        requests=len(latencies) + errors,
        duration_s=elapsed,
        errors=errors,
        timeouts=timeouts,
        p50_ms=float(np.percentile(ms, 50)),
        p99_ms=float(np.percentile(ms, 99)),
        mean_ms=float(ms.mean()),
        max_ms=float(ms.max()),
        non_2xx=errors,
        generator_cpu_s=cpu,
    )


def _mlgate(workdir: Path, model_file: Path) -> Served:
    process = TARGETS["mlgate"].make(workdir, model_file)
    argv = list(process.argv)
    grpc_port = argv[argv.index("--grpc-port") + 1]
    return Served("mlgate", process, f"127.0.0.1:{grpc_port}")


def _mlserver(workdir: Path, model_file: Path) -> Served:
    exe = mlserver_peer.ensure_venv()
    folder = workdir / "mlserver"
    http_port, grpc_port = free_port(), free_port()
    mlserver_peer.write_server_folder(
        folder, model_file, http_port=http_port, grpc_port=grpc_port, metrics_port=free_port()
    )
    process = ServerProcess(
        name="mlserver",
        argv=[str(exe), "start", str(folder)],
        base_url=f"http://127.0.0.1:{http_port}",
        ready_path=f"/v2/models/{workload.MODEL_NAME}/ready",
        cwd=str(folder),
        log_path=workdir / "mlserver.log",
    )
    return Served("mlserver", process, f"127.0.0.1:{grpc_port}")


SERVERS = {"mlgate": _mlgate, "mlserver": _mlserver}


def perf_analyzer_rows(found: perf_analyzer.Found, served: Served,
                       cfg: argparse.Namespace) -> list[tuple[str, str, Any]]:  # fmt: skip
    """Rows ``(server, load, text)`` from ``perf_analyzer`` over HTTP and gRPC."""
    out: list[tuple[str, str, Any]] = []
    http = served.process.base_url.removeprefix("http://")
    for transport, address in (("http", http), ("grpc", served.grpc_address)):
        points, problem = perf_analyzer.run(
            found, model=workload.MODEL_NAME, address=address, transport=transport,
            concurrency=cfg.concurrency,
        )  # fmt: skip
        for p in points:
            p99 = f", p99 {p.p99_ms:.1f} ms" if p.p99_ms is not None else ""
            text = f"{p.infer_per_s:,.0f} infer/s, mean latency {p.mean_latency_ms:.2f} ms{p99}"
            out.append((served.name, f"perf_analyzer {transport}, c={p.concurrency}", text))
        if problem:
            out.append((served.name, f"perf_analyzer {transport}", f"failed: {problem}"))
    return out


@dataclass
class Measured:
    """A load point and the server's CPU time per answered request (µs) during it."""

    result: LoadResult
    server_cpu_us: float


def measure(served: Served, model: Any, cfg: argparse.Namespace) -> list[tuple[str, str, Any]]:
    """Rows ``(server, load, Measured or error text)`` for gRPC and HTTP at each concurrency."""
    problem = verify(served.grpc_address, model)
    if problem:
        return [(served.name, "grpc", problem)]
    rows = workload.request_rows(256, seed=3)
    grpc_requests = [infer_request(rows[i : i + 1]) for i in range(len(rows))]
    url = served.process.base_url.removeprefix("http://")
    host, port = url.split(":")
    path = f"/v2/models/{workload.MODEL_NAME}/infer"
    http_requests = [
        asyncio_load.http_request(host, int(port), path, workload.oip_body_bytes(rows[i : i + 1]))
        for i in range(len(rows))
    ]
    out: list[tuple[str, str, Any]] = []

    assert served.process.proc is not None
    pid = served.process.proc.pid

    def timed(load: str, run: Callable[[], LoadResult]) -> None:
        cpu0 = tree_cpu_seconds(pid)
        result = run()
        cpu_us = (tree_cpu_seconds(pid) - cpu0) / max(result.requests, 1) * 1e6
        out.append((served.name, load, Measured(result, cpu_us)))

    for c in cfg.concurrency:
        grpc_run = partial(grpc_closed_loop, served.grpc_address, grpc_requests, concurrency=c,
                           duration_s=cfg.duration)  # fmt: skip
        timed(f"gRPC, c={c}", grpc_run)
        http_run = partial(asyncio_load.closed_loop, host, int(port), http_requests,
                           connections=c, duration_s=cfg.duration)  # fmt: skip
        timed(f"HTTP, c={c}", http_run)
    return out


def render(points: list[tuple[str, str, Any]], command: str, before: str) -> str:
    lines = [
        f"Command: `{command}`. Load average before: {before}; after: {load_average()}. The "
        "machine (2 cores) was shared with other jobs while this ran: compare the rows with "
        "each other (ratios), not with other sections. Client and servers share the cores; "
        "gRPC requests carry one FP32 row in typed contents, HTTP ones OIP JSON.",
        "",
        "| server | transport, load | req/s | p50 ms | p99 ms | errors | server CPU µs/request "
        "| client CPU (cores) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, load, result in points:
        if isinstance(result, str) and load.startswith("perf_analyzer"):
            continue  # listed below the table
        if isinstance(result, str):
            lines.append(f"| {name} | {load} | – | – | – | {result} | – | – |")
            continue
        r = result.result
        lines.append(
            f"| {name} | {load} | {r.ok_rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.1f} | "
            f"{r.errors + r.timeouts} | {result.server_cpu_us:,.0f} | {r.generator_cores:.2f} |"
        )
    found = {(n, load): m.result for n, load, m in points if isinstance(m, Measured)}
    ratios = []
    for load in sorted({load for _, load in found if load.startswith("gRPC")}):
        ours, http = found.get(("mlgate", load)), found.get(("mlgate", "HTTP" + load[4:]))
        peer = found.get(("mlserver", load))
        if ours and http:
            ratios.append(f"- {load}: mlgate gRPC / mlgate HTTP throughput "
                          f"{ours.ok_rps / max(http.ok_rps, 1e-9):.2f}×")  # fmt: skip
        if ours and peer:
            ratios.append(
                f"- {load}: mlgate / MLServer over gRPC: throughput "
                f"{ours.ok_rps / max(peer.ok_rps, 1e-9):.1f}×, p99 "
                f"{ours.p99_ms / max(peer.p99_ms, 1e-9):.2f}× of MLServer's"
            )
    analyzer = [f"- {name}, {load}: {text}" for name, load, text in points
                if load.startswith("perf_analyzer")]  # fmt: skip
    if analyzer:
        analyzer.insert(0, "Triton's `perf_analyzer` 2.41 (its own client, its own random data):")
    else:
        analyzer = ["Triton's `perf_analyzer` was not found: `python -m benchmarks.perf_analyzer "
                    "install` fetches it (see that module's docstring)."]  # fmt: skip
    return "\n".join([*lines, "", *ratios, "", *analyzer]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="mlgate,mlserver")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per load point")
    ap.add_argument("--concurrency", default="1,64", help="comma-separated closed-loop users")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    cfg = ap.parse_args(argv)
    cfg.concurrency = [int(c) for c in cfg.concurrency.split(",")]
    names = cfg.targets.split(",")
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        ap.error(f"--targets: unknown {unknown}; expected some of {sorted(SERVERS)}")
    workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix="mlgate-bench-grpc-"))
    model_file = workload.model_path()
    model = workload.load_model()
    before = load_average()
    points: list[tuple[str, str, Any]] = []
    analyzer = perf_analyzer.find()
    for name in names:
        served = SERVERS[name](workdir, model_file)
        served.process.start(timeout_s=400)  # cold starts are slow on a loaded machine
        try:
            points.extend(measure(served, model, cfg))
            if analyzer and name == "mlgate":
                points.extend(perf_analyzer_rows(analyzer, served, cfg))
        finally:
            served.process.stop()
    command = "python -m benchmarks.bench_grpc " + shlex.join(sys.argv[1:] if argv is None else
                                                              list(argv))  # fmt: skip
    body = render(points, command.strip(), before)
    print(body)
    if not cfg.no_write:
        write_section(RESULTS, "gRPC serving", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
