"""CPU per predict request of the gateway's own code, without the HTTP server or the network.

Drives ``GatewayFront.__rsgi__`` in process, on a uvloop loop, with an in-memory RSGI
protocol object (the body given, the answer kept), one task per request as granian creates
them, ``--concurrency`` requests in flight; the model is the reference forest registered in a
temporary home (or ``--home``), the prediction log and its crash journal on, default settings.
Prints requests/s and CPU per request (process CPU: the loop, the inference threads and the
log writer together), so that a change to the predict path can be weighed on a machine shared
with other work (CPU time moves far less with the machine's load than wall time).

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.front_cpu --concurrency 1,64 --requests 20000
    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.front_cpu --profile out.txt   # cProfile
    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.front_cpu --phases             # by phase
    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.front_cpu --ab log_journal=false  # A/B

``--phases`` times each step of one request on its own, on the loop, over many repetitions
(route match, headers, body read, decode, validate, kernel, log row and journal write,
metrics, encode): the microseconds of CPU a request spends in each, as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from benchmarks import workload

PATH = "/v2/models/rf/infer"


class Headers(dict[str, str]):
    """RSGI's ``scope.headers`` as the front reads it (``get`` by lower-case name)."""


class Scope:
    __slots__ = ("headers", "method", "path", "proto", "query_string")

    def __init__(self, path: str, headers: dict[str, str]) -> None:
        self.proto = "http"
        self.method = "POST"
        self.path = path
        self.query_string = ""
        self.headers = Headers(headers)


class Protocol:
    """The RSGI HTTP protocol calls the front makes, in memory: the body, then the answer."""

    __slots__ = ("answer", "body", "sent")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent = False
        self.answer: tuple[int, list[tuple[str, str]], bytes] | None = None

    async def __call__(self) -> bytes:
        return self.body

    def __aiter__(self) -> Protocol:
        self.sent = False
        return self

    async def __anext__(self) -> bytes:
        if self.sent:
            raise StopAsyncIteration
        self.sent = True
        return self.body

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.answer = (status, headers, body)


def register(home: Path) -> None:
    """The reference forest as ``rf`` in ``home``'s registry (skipped if it is there)."""
    if (home / "registry" / "models" / "rf").exists():
        return
    home.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-P", "-c", "from mlgate.cli import main; main()", "models",
            "register", "rf", str(workload.model_path()), "--trust-pickle"]  # fmt: skip
    subprocess.run(argv, cwd=home, check=True, env=_env(home), capture_output=True)


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "MLGATE_HOME": str(home)}


async def drive(front: Any, bodies: list[bytes], *, concurrency: int, requests: int) -> int:
    """``requests`` predict requests, ``concurrency`` at a time; the number answered 200."""
    loop = asyncio.get_running_loop()
    headers = {"content-type": "application/json", "content-length": str(len(bodies[0]))}
    ok = 0
    left = requests

    async def client(offset: int) -> None:
        nonlocal ok, left
        i = offset
        while left > 0:
            left -= 1
            i += 1
            protocol = Protocol(bodies[i % len(bodies)])
            await loop.create_task(front.__rsgi__(Scope(PATH, headers), protocol))
            if protocol.answer is not None and protocol.answer[0] == 200:
                ok += 1

    await asyncio.gather(*(client(k * 7919) for k in range(concurrency)))
    return ok


def _time_us(fn: Any, n: int) -> float:
    """Median over 5 rounds of ``n`` calls of ``fn()``, in microseconds of this thread's CPU
    per call (wall time on a machine shared with other work measures the other work)."""
    rounds = []
    for _ in range(5):
        t0 = time.thread_time_ns()
        for _ in range(n):
            fn()
        rounds.append((time.thread_time_ns() - t0) / n / 1000)
    return sorted(rounds)[2]


async def _atime_us(fn: Any, n: int) -> float:
    """``_time_us`` of a coroutine function: the process's CPU (other threads included)."""
    rounds = []
    for _ in range(5):
        t0 = time.process_time_ns()
        for _ in range(n):
            await fn()
        rounds.append((time.process_time_ns() - t0) / n / 1000)
    return sorted(rounds)[2]


async def phases(front: Any, bodies: list[bytes], n: int = 2000) -> list[tuple[str, float]]:
    """Microseconds per request of each step of the predict path, each timed on its own."""
    from gateway.batcher import Answers, BatchResult
    from gateway.http import body as body_rules
    from gateway.http.predict import _oip_reply
    from gateway.http.request import PredictRequest
    from gateway.http.routes import match
    from gateway.service import Pending, Prediction

    gw = front.gateway
    body = bodies[0]
    headers = Headers({"content-type": "application/json", "content-length": str(len(body))})
    operation = match("POST", PATH)
    assert operation is not None
    request = PredictRequest(headers, "")
    state = gw.models.get("rf")
    loaded, route = state.choose("key")
    payload = operation.decode(request, body)
    X = payload.to_matrix(loaded.inputs, loaded.outputs)
    outputs = loaded.runtime.predict(X)
    result = BatchResult(outputs, batch_rows=1, queue_ns=1000, compute_ns=10000)
    prediction = Prediction(loaded, route, "0123456789ab000000000001", outputs)
    pending = Pending(None, loaded, route, "0123456789ab000000000001", "k", X,
                      time.perf_counter_ns())  # fmt: skip
    answers = Answers([(pending, X, result)], X, outputs)
    metrics = gw.metrics
    inputs, output_spec = loaded.inputs, loaded.outputs

    def observe() -> None:
        metrics.observe_request("rf", loaded.version, route, 200, total_s=0.001,
                                queue_s=0.0001, compute_s=0.0001, rows=1)  # fmt: skip

    steps = [
        ("route match (path -> operation)", lambda: match("POST", PATH)),
        ("headers + admit (token, model)", lambda: operation.admit(gw, request)),
        ("body decode (JSON -> tensors)", lambda: operation.decode(request, body)),
        ("validate (tensors -> float32 X)", lambda: payload.to_matrix(inputs, output_spec)),
        ("route choice (champion/canary)", lambda: state.choose("key")),
        ("kernel (runtime.predict, 1 row)", lambda: loaded.runtime.predict(X)),
        ("kernel + batcher wrapper (CPU timing)", lambda: loaded.batcher._predict(X)),
        ("log row + journal write (1-row batch)", lambda: gw._log_answers(loaded, answers)),
        ("metrics (count, latency histograms)", observe),
        ("encode (answer JSON + headers)", lambda: _oip_reply(payload, "rf", prediction)),
    ]
    out = [(name, _time_us(step, n)) for name, step in steps]

    async def read() -> bytes:
        return await body_rules.read_body(request, Protocol(body), gw.settings.max_body_bytes)

    out.insert(2, ("body read (RSGI protocol)", await _atime_us(read, n)))

    async def whole() -> None:
        protocol = Protocol(body)
        await front.__rsgi__(Scope(PATH, headers), protocol)

    out.append(("whole request in process, c=1 (no server)", await _atime_us(whole, n)))
    return out


async def run(args: argparse.Namespace, home: Path) -> None:
    from gateway.settings import GatewaySettings
    from mlgate.app import create_gateway_front

    settings = GatewaySettings.from_mapping(dict(kv.split("=", 1) for kv in args.set))
    front = create_gateway_front(
        settings,
        registry_url="file://" + str(home / "registry"),
        logs_url=str(home / "logs"),
        tune_process=True,
    )
    await front.startup()
    while not front.gateway.models.ready:  # loading (compiles, warms) off the loop
        await asyncio.sleep(0.05)
    rows = workload.request_rows(256)
    bodies = [workload.oip_body_bytes(rows[i : i + 1]) for i in range(256)]
    await drive(front, bodies, concurrency=16, requests=2000)  # warm-up
    if args.phases:
        print("| phase | CPU us per request |\n|---|---:|")
        for name, us in await phases(front, bodies):
            print(f"| {name} | {us:.1f} |")
        await front.shutdown()
        return
    if args.ab:
        await compare(args, home, front, bodies)
        return
    for c in args.concurrency:
        print(f"measuring c={c} (pid {os.getpid()})", file=sys.stderr, flush=True)
        profiler = cProfile.Profile(time.thread_time_ns, 1e-9) if args.profile else None
        cpu0, t0 = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        ok = await drive(front, bodies, concurrency=c, requests=args.requests)
        if profiler is not None:
            profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        print(
            f"c={c}: {ok}/{args.requests} answered 200, {ok / wall:,.0f} req/s, "
            f"CPU {1e6 * cpu / max(ok, 1):.1f} us/request ({cpu / wall:.2f} cores)"
        )
        if profiler is not None:
            out = f"{args.profile}.c{c}"
            profiler.dump_stats(out)
            pstats.Stats(out).sort_stats("tottime").print_stats(25)
    await front.shutdown()


async def compare(args: argparse.Namespace, home: Path, front: Any, bodies: list[bytes]) -> None:
    """``--ab``: a second front in this process with those settings changed, measured in
    blocks interleaved with the first (A B B A, ``--reps`` times, each block ``--requests``
    requests at each concurrency, its rows then written to Parquet as part of it), so that
    the machine's load falls on both alike. Prints CPU per request of every block, then the
    median of each and B / A."""
    from gateway.settings import GatewaySettings
    from mlgate.app import create_gateway_front

    values = dict(kv.split("=", 1) for kv in args.set)
    values.update(kv.split("=", 1) for kv in args.ab)
    other = create_gateway_front(
        GatewaySettings.from_mapping(values),
        registry_url="file://" + str(home / "registry"),
        logs_url=str(home / "logs-b"),
        tune_process=True,
    )
    await other.startup()
    while not other.gateway.models.ready:
        await asyncio.sleep(0.05)
    await drive(other, bodies, concurrency=16, requests=2000)  # warm-up
    fronts = {"A": front, "B": other}
    cpu_us: dict[tuple[str, int], list[float]] = {}
    print(f"A: {' '.join(args.set) or 'defaults'}; B: {' '.join(args.ab)}")
    for rep in range(args.reps):
        for name in "AB" if rep % 2 == 0 else "BA":
            gw = fronts[name].gateway
            for c in args.concurrency:
                cpu0 = time.process_time()
                ok = await drive(fronts[name], bodies, concurrency=c, requests=args.requests)
                await asyncio.to_thread(gw.log.flush)
                us = 1e6 * (time.process_time() - cpu0) / max(ok, 1)
                cpu_us.setdefault((name, c), []).append(us)
                print(f"rep {rep + 1} {name} c={c}: {ok}/{args.requests} answered 200, "
                      f"CPU {us:.1f} us/request", flush=True)  # fmt: skip
    print("| c | A us/request (median, range) | B us/request (median, range) | B / A |")
    print("|---:|---:|---:|---:|")
    for c in args.concurrency:
        a, b = sorted(cpu_us[("A", c)]), sorted(cpu_us[("B", c)])
        med_a, med_b = a[len(a) // 2], b[len(b) // 2]
        print(f"| {c} | {med_a:.1f} ({a[0]:.1f}-{a[-1]:.1f}) | {med_b:.1f} ({b[0]:.1f}-"
              f"{b[-1]:.1f}) | {med_b / med_a:.3f} |")  # fmt: skip
    await other.shutdown()
    await front.shutdown()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", default="1,64")
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--home", type=Path, default=None, help="an mlgate home with rf registered")
    ap.add_argument("--profile", default=None, help="cProfile each point to PROFILE.c<N>")
    ap.add_argument("--phases", action="store_true", help="time each step of a request")
    ap.add_argument("--set", action="append", default=[], help="a gateway setting, KEY=VALUE")
    ap.add_argument(
        "--ab",
        action="append",
        default=[],
        help="compare with a second front with this setting too, KEY=VALUE",
    )
    ap.add_argument("--reps", type=int, default=6, help="--ab: blocks of each front")  # fmt: skip
    args = ap.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    home = args.home or Path(tempfile.mkdtemp(prefix="mlgate-front-cpu-"))
    register(home)
    uvloop.run(run(args, home))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
