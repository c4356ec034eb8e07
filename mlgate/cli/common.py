"""Options, output and error handling shared by every ``mlgate`` command."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from mlgate import settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client import CollectorRegistry

    from registry import Registry

T = TypeVar("T")


def _width(stream: Any) -> int | None:
    """Piped output (scripts, CI logs) is not cut at rich's 80-column default; a terminal's
    own width is used, and so is ``COLUMNS`` when set (rich reads it at each print)."""
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


def metrics_port_option(role: str, what: str = "") -> Any:
    """``--metrics-port`` of a background role (``MLGATE_<ROLE>_METRICS_PORT``)."""
    return typer.Option(
        "--metrics-port",
        envvar=f"MLGATE_{role.upper()}_METRICS_PORT",
        min=0,
        max=65535,
        help=f"Serve Prometheus /metrics{what} on this port (default: off).",
    )


def metrics_host_option(role: str) -> Any:
    """``--metrics-host`` of a background role (``MLGATE_<ROLE>_METRICS_HOST``)."""
    return typer.Option(
        "--metrics-host", envvar=f"MLGATE_{role.upper()}_METRICS_HOST", help="Address for /metrics."
    )


def serve_metrics(port: int, host: str, registry: CollectorRegistry) -> None:
    """Serve ``registry`` as Prometheus ``/metrics`` on ``host:port`` from a daemon thread;
    a port that cannot be bound is one clear error line."""
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        fail(f"--metrics-port {port}: cannot listen on {host}: {exc}")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear line on stderr and exit non-zero (no traceback for user mistakes)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str, sort_keys=False) + "\n")


def locations(
    home: str | None = None, registry: str | None = None, logs: str | None = None
) -> settings.Locations:
    try:
        return settings.resolve(home=home, registry=registry, logs=logs)
    except settings.ConfigError as exc:
        fail(str(exc))


def _storage_error(exc: BaseException) -> bool:
    from registry import RegistryError

    return isinstance(exc, (RegistryError, OSError)) or type(exc).__module__.startswith(
        ("botocore", "aiobotocore")
    )


def registry_call(fn: Callable[[], T]) -> T:
    """Run a registry call: user mistakes (``RegistryError``) and storage failures (an S3
    endpoint down, a disk error) become one-line errors; anything else is a bug and raises."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - filtered just below, the rest re-raised
        if not _storage_error(exc):
            raise
        fail(str(exc) or type(exc).__name__)


def open_registry(home: str | None, registry: str | None) -> Registry:
    """The registry named by ``--registry`` / ``MLGATE_REGISTRY`` / ``--home``."""
    from registry import Registry

    url = locations(home=home, registry=registry).registry
    return registry_call(lambda: Registry(url))
