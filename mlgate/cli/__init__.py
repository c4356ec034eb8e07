"""The ``mlgate`` command line (typer). Each command group lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="mlgate",
    help="Serve, monitor and roll out models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register_groups() -> None:
    # Imported here so that each group module can import ``app``-free helpers without cycles.
    import importlib

    for module in ("models", "serve", "rollout", "monitor", "trainer", "demo"):
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
