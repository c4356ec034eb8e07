"""``make bench``: every benchmark of the project, one after the other, on this machine.

- runtimes: ``python -m benchmarks.bench_runtimes --table`` (prints its Markdown table;
  paste it into the "## Runtimes" section of RESULTS.md);
- HTTP serving: ``python -m benchmarks.http_bench`` (updates "## HTTP serving" itself);
- monitor: ``python -m benchmarks.bench_monitor --write`` (updates "## Monitor" itself);
- gRPC serving: ``python -m benchmarks.bench_grpc`` (updates "## gRPC serving" itself; with
  Triton's ``perf_analyzer`` on the PATH or in ``$PERF_ANALYZER`` it adds its rows).

Each runs in its own process so that one's memory and threads do not colour the next.
``--only runtimes,http,monitor,grpc`` picks a subset; extra arguments after ``--`` go to each.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

SUITES = {
    "runtimes": ["benchmarks.bench_runtimes", "--table"],
    "http": ["benchmarks.http_bench"],
    "monitor": ["benchmarks.bench_monitor", "--write"],
    "grpc": ["benchmarks.bench_grpc"],
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(SUITES), help="comma-separated subset")
    ap.add_argument("extra", nargs="*", help="arguments passed to each suite (after --)")
    args = ap.parse_args(argv)
    failed = []
    for name in args.only.split(","):
        if name not in SUITES:
            ap.error(f"--only: unknown suite {name!r}; known: {', '.join(SUITES)}")
        cmd = [sys.executable, "-m", *SUITES[name], *args.extra]
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        if subprocess.run(cmd).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
