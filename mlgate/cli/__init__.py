"""The ``mlgate`` command line (typer). Each command group lives in its own module."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="mlgate",
    help="Serve, monitor and roll out models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"mlgate {version('mlgate')}")
        except PackageNotFoundError:  # running from a source tree that was never installed
            typer.echo("mlgate (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),  # fmt: skip
    ] = False,
) -> None:
    """Serve, monitor, retrain and roll out models."""


def _register_groups() -> None:
    # Imported here so that each group module can import ``app``-free helpers without cycles.
    import importlib

    for module in (
        "models",
        "serve",
        "rollout",
        "monitor",
        "trainer",
        "loadtest",
        "webhooks",
        "demo",
        "ui",
        "kernels",
    ):
        try:
            mod = importlib.import_module(f"mlgate.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mlgate.cli.{module}":
                continue  # group not built yet
            raise
        mod.attach(app)


_register_groups()


def main() -> None:
    app()
