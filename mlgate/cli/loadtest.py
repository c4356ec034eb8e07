"""``mlgate loadtest``: load-test a model on any Open Inference Protocol server."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlgate.cli.common import (
    FormatOption,
    HomeOption,
    OutputFormat,
    RegistryOption,
    console,
    err_console,
    fail,
    locations,
    print_json,
)


class RowSource(StrEnum):
    reference = "reference"
    random = "random"


def attach(app: typer.Typer) -> None:
    app.command("loadtest")(loadtest)


def loadtest(
    name: Annotated[str, typer.Argument(help="Model name on the server.")],
    url: Annotated[
        str, typer.Option("--url", help="Base URL of the OIP server.")
    ] = "http://127.0.0.1:8080",
    users: Annotated[int, typer.Option("--users", min=1, help="Concurrent users.")] = 16,
    duration: Annotated[float, typer.Option("--duration", min=1.0, help="Seconds to run.")] = 30.0,
    batch_rows: Annotated[int, typer.Option("--batch-rows", min=1, help="Rows per request.")] = 1,
    rows: Annotated[
        str,
        typer.Option(
            "--rows",
            help="Where rows come from: reference (the model's reference sample, read from"
            " the registry), random, or a .parquet/.csv file with the feature columns.",
        ),
    ] = RowSource.reference.value,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="MLGATE_PREDICT_TOKEN", help="Bearer token to send."),
    ] = None,
    home: HomeOption = None,
    registry: RegistryOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Load-test NAME with closed-loop users (locust) and print req/s, latency and errors.

    Requests carry X-Mlgate-Traffic: loadtest, so the monitor and the trainer leave them out.
    """
    from mlgate import loadtest as lt

    metadata = _metadata(url, name, token)
    try:
        specs = lt.input_specs(metadata)
        frame, source = _rows(rows, name, specs, home, registry)
        payloads = lt.bodies(specs, frame, batch_rows)
    except lt.LoadTestError as exc:
        fail(f"{name}: {exc}")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    quiet = output is OutputFormat.json
    if not quiet:
        err_console.print(
            f"load test: {users} users for {duration:g} s against {url} model {name!r},"
            f" rows from {source}"
        )

    def progress(p: dict[str, Any]) -> None:
        if not quiet:
            p99 = "-" if p["p99_ms"] is None else f"{p['p99_ms']:.0f} ms"
            err_console.print(
                f"  {p['elapsed_s']:5.1f} s  {p['requests']:>8} requests  "
                f"{p['failures']:>6} failed  {p['requests_per_s']:8.1f} req/s  p99 {p99}",
                highlight=False,
            )

    summary = lt.run(url, name, payloads, users=users, duration_s=duration, headers=headers,
                     rows_from=source, on_progress=progress)  # fmt: skip
    if quiet:
        print_json(summary.to_dict())
    else:
        _print_summary(summary)
    if summary.requests == 0:
        raise typer.Exit(1)


def _metadata(url: str, name: str, token: str | None) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(f"{url.rstrip('/')}/v2/models/{name}", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc}")
    if response.status_code != 200:
        fail(f"{url}: model {name!r} metadata answered {response.status_code}: "
             f"{response.text[:200]}")  # fmt: skip
    try:
        body = response.json()
    except ValueError:
        fail(f"{url}: model {name!r} metadata is not JSON")
    if not isinstance(body, dict):
        fail(f"{url}: model {name!r} metadata is not a JSON object")
    return body


def _rows(
    choice: str, name: str, specs: list[Any], home: str | None, registry: str | None
) -> tuple[Any, str]:
    import polars as pl

    from mlgate import loadtest as lt

    if choice == RowSource.random.value:
        return lt.random_rows(specs), "random rows"
    if choice != RowSource.reference.value:
        path = Path(choice)
        if not path.is_file():
            fail(f"--rows {choice}: expected reference, random or a .parquet/.csv file")
        try:
            frame = pl.read_csv(path) if path.suffix == ".csv" else pl.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - polars raises many kinds for a bad file
            fail(f"--rows {choice}: cannot read it ({type(exc).__name__}: {exc})")
        return frame, str(path)
    from registry import Registry, RegistryError

    locs = locations(home=home, registry=registry)
    try:
        reg = Registry(locs.registry)
        mv = reg.get(name, "champion")
        reference = reg.load_reference(mv)
    except (RegistryError, OSError) as exc:
        fail(f"{name}: no reference sample to draw rows from ({exc}); "
             "pass --rows random or --rows FILE")  # fmt: skip
    if reference is None:
        fail(f"{name} v{mv.version} has no reference sample; pass --rows random or --rows FILE")
    features = [f for f in mv.input_schema.names if f in reference.columns]
    return reference.select(features), f"the reference sample of {name} v{mv.version}"


def _print_summary(s: Any) -> None:
    table = Table(title=f"load test: {s.model} at {s.url}", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} ms"

    for label, value in [
        ("users", s.users), ("duration", f"{s.duration_s:.1f} s"), ("requests", s.requests),
        ("failed", s.failures), ("throughput", f"{s.requests_per_s:.1f} req/s"),
        ("p50", ms(s.p50_ms)), ("p90", ms(s.p90_ms)), ("p99", ms(s.p99_ms)),
        ("rows from", s.rows_from),
    ]:  # fmt: skip
        table.add_row(label, str(value))
    console.print(table)
    for e in s.errors:
        console.print(f"[red]{e['occurrences']} × {e['method']}: {e['error']}[/]")
