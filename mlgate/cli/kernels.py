"""``mlgate kernels warm``: compile every numba kernel family once into numba's on-disk cache.

``make``'s install step runs it, so that the first ``mlgate serve``, ``models register`` or
monitor pass of a fresh install loads machine code instead of compiling it. The cache goes
where numba puts it for the installed package: ``__pycache__`` next to the kernels' source
when that is writable, else the user's cache directory (``~/.cache/numba``), or
``NUMBA_CACHE_DIR`` when set; the serving process must see the same place (same user, same
``NUMBA_CACHE_DIR``). See docs/deploy.md.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer
from rich.table import Table

from mlgate.cli.common import FormatOption, OutputFormat, console, err_console, print_json

group = typer.Typer(
    name="kernels",
    help="numba's compiled kernels: fill the on-disk cache once.",
    no_args_is_help=True,
)

KERNEL_MODULES = (
    "gateway.runtimes.numba.finish",
    "gateway.runtimes.numba.forest",
    "gateway.runtimes.numba.forest_direct",
    "gateway.runtimes.numba.linear",
    "gateway.runtimes.numba.mlp",
    "gateway.runtimes.numba.onehot",
    "gateway.runtimes.numba.program",
    "monitor.detectors.adwin",
    "monitor.stats.binning",
)


def attach(app: typer.Typer) -> None:
    app.add_typer(group, name="kernels")


@group.command("warm")
def warm(
    parallel: Annotated[
        bool,
        typer.Option(
            "--parallel/--no-parallel",
            help="Also the trees' multi-threaded kernels (used with parallel_rows > 0).",
        ),
    ] = True,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Compile every kernel family once (or load it, when the cache holds it already)."""
    from gateway.runtimes.numba.warm import warm_kernels
    from kernels import cache_stats
    from monitor.warm import warm_kernels as warm_monitor

    start = time.perf_counter()
    rows = [
        {"family": w.family, "what": w.what, "seconds": round(w.seconds, 3)}
        for w in warm_kernels(parallel=parallel)
    ]
    rows += [
        {"family": "monitor", "what": name, "seconds": round(seconds, 3)}
        for name, seconds in warm_monitor().items()
    ]
    stats = cache_stats(sys.modules[name] for name in KERNEL_MODULES)
    compiled = sum(s.misses for s in stats)
    loaded = sum(s.hits for s in stats)
    places = sorted({s.cache_path for s in stats if s.cache_path})
    uncached = sorted(s.kernel for s in stats if s.cache_path is None)
    seconds = time.perf_counter() - start
    if fmt is OutputFormat.json:
        print_json(
            {"samples": rows, "compiled": compiled, "loaded": loaded, "cache_paths": places,
             "uncached": uncached, "seconds": round(seconds, 3)}
        )  # fmt: skip
    else:
        table = Table(title="numba kernels")
        for header in ("family", "sample model", "seconds"):
            table.add_column(header, justify="right" if header == "seconds" else "left")
        for row in rows:
            table.add_row(str(row["family"]), str(row["what"]), f"{row['seconds']:.2f}")
        console.print(table)
        console.print(
            f"{compiled} kernel signature(s) compiled, {loaded} loaded from numba's cache "
            f"in {seconds:.1f} s; cache: {', '.join(places) or 'none'}",
            highlight=False,
        )
    if uncached:
        err_console.print(
            "warning: numba found no writable cache directory for "
            f"{', '.join(uncached)}: they are compiled again in every process; set "
            "NUMBA_CACHE_DIR to a writable directory (the same for `mlgate serve`) and rerun",
            highlight=False,
        )
