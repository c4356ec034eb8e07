"""Options, output and error handling shared by every ``mlgate`` command."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from mlgate import settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

T = TypeVar("T")


def _width(stream: Any) -> int | None:
    """Piped output (scripts, CI logs) is not cut at rich's 80-column default."""
    if os.environ.get("COLUMNS") or stream.isatty():
        return None
    return 160


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


HomeOption = Annotated[
    str | None, typer.Option("--home", envvar="MLGATE_HOME", help="Home directory (./.mlgate).")
]
RegistryOption = Annotated[
    str | None,
    typer.Option("--registry", envvar="MLGATE_REGISTRY", help="Registry URL or path."),
]
LogsOption = Annotated[
    str | None, typer.Option("--logs", envvar="MLGATE_LOGS", help="Log store URL or path.")
]
FormatOption = Annotated[
    OutputFormat, typer.Option("--format", help="Output format: table or json.")
]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear line on stderr and exit non-zero (no traceback for user mistakes)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str, sort_keys=False) + "\n")


@contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Turn the listed exception types into one-line CLI errors."""
    try:
        yield
    except kinds as exc:
        fail(str(exc))


def locations(
    home: str | None = None, registry: str | None = None, logs: str | None = None
) -> settings.Locations:
    try:
        return settings.resolve(home=home, registry=registry, logs=logs)
    except settings.ConfigError as exc:
        fail(str(exc))


def guarded(fn: Callable[[], T], *kinds: type[BaseException]) -> T:
    with user_errors(*kinds):
        return fn()
    raise AssertionError("unreachable")  # pragma: no cover
