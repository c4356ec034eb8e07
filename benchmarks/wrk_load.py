"""Closed-loop load with ``wrk`` (Debian package) and a Lua script that POSTs JSON bodies.

The Lua script pre-formats one request per body (read from a file, one body a line) and cycles
through them, so every request carries distinct rows; its ``done`` hook prints the exact
counts and percentiles as one JSON line, which :func:`parse_wrk_output` reads.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from typing import TYPE_CHECKING

from benchmarks.load_result import LoadResult, cpu_seconds, with_generator_cpu

if TYPE_CHECKING:
    from pathlib import Path

RESULT_MARK = "@@RESULT "

LUA_SCRIPT = r"""
-- args: <bodies file> <path>
local requests = {}
local index = 0
local counter = 0

setup = function(thread)
  thread:set("offset", counter)
  counter = counter + 1
end

init = function(args)
  local path = args[2]
  local headers = { ["Content-Type"] = "application/json" }
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    if #line > 0 then
      requests[#requests + 1] = wrk.format("POST", path, headers, line)
    end
  end
  f:close()
  index = ((offset or 0) * 7919) % #requests
end

request = function()
  index = index % #requests + 1
  return requests[index]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '@@RESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def write_lua(path: Path) -> Path:
    path.write_text(LUA_SCRIPT)
    return path


def parse_wrk_output(stdout: str, *, rows_per_request: int = 1) -> LoadResult:
    """Read the JSON line our Lua ``done`` hook printed.

    >>> line = ('@@RESULT {"requests":10,"duration_us":2000000,"connect":0,"read":1,'
    ...         '"write":0,"status":2,"timeout":3,"p50_us":1500,"p99_us":9000,'
    ...         '"mean_us":2000.0,"max_us":12000}')
    >>> r = parse_wrk_output(line)
    >>> (r.rps, r.errors, r.timeouts, r.p50_ms)
    (5.0, 3, 3, 1.5)
    """
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARK):
            d = json.loads(line[len(RESULT_MARK) :])
            break
    else:
        raise ValueError(f"wrk output: no '{RESULT_MARK.strip()}' line in:\n{stdout[-2000:]}")
    return LoadResult(
        generator="wrk",
        requests=int(d["requests"]),
        duration_s=d["duration_us"] / 1e6,
        errors=int(d["connect"] + d["read"] + d["write"] + d["status"]),
        timeouts=int(d["timeout"]),
        p50_ms=d["p50_us"] / 1e3,
        p99_ms=d["p99_us"] / 1e3,
        mean_ms=d["mean_us"] / 1e3,
        max_ms=d["max_us"] / 1e3,
        non_2xx=int(d["status"]),
        rows_per_request=rows_per_request,
    )


def run_wrk(
    url: str,
    path: str,
    *,
    bodies_file: Path,
    lua_file: Path,
    connections: int,
    duration_s: float,
    timeout_s: float = 10.0,
    threads: int | None = None,
    rows_per_request: int = 1,
) -> LoadResult:
    """One closed-loop point: ``connections`` keep-alive connections for ``duration_s``."""
    threads = threads or (1 if connections < 2 else 2)
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "-s",
        str(lua_file),
        url,
        "--",
        str(bodies_file),
        path,
    ]
    cpu0 = cpu_seconds(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + timeout_s + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {proc.stderr[-1000:]}")
    result = parse_wrk_output(proc.stdout, rows_per_request=rows_per_request)
    return with_generator_cpu(result, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0)
