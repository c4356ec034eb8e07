"""``mlgate models``: register, list and show model versions in the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec
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
    open_registry,
    print_json,
    registry_call,
)
from registry import ModelVersion, Registry, Route

T = TypeVar("T")

group = typer.Typer(
    name="models", help="Register, list and show model versions.", no_args_is_help=True
)


def attach(app: typer.Typer) -> None:
    app.add_typer(group, name="models")


def _tags(raw: list[str] | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in raw or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--tag {item!r}: expected KEY=VALUE")
        tags[key] = value
    return tags


def _is_entry_point(value: str) -> bool:
    module, sep, func = value.partition(":")
    return bool(sep) and all(p.isidentifier() for p in module.split(".")) and func.isidentifier()


def _role(version: int, route: Route) -> str:
    if version == route.champion:
        return "champion"
    if route.canary is not None and route.canary.version == version:
        return f"canary {route.canary.weight:g}%"
    for shadow in route.shadows:
        if shadow.version == version:
            return f"shadow {shadow.percent:g}%"
    return "-"


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


@group.command("register")
def register(
    name: Annotated[str, typer.Argument(help="Model name.", show_default=False)],
    path: Annotated[
        Path,
        typer.Argument(
            help="Model file: .skops, .onnx (.pkl/.joblib with --trust-pickle).", show_default=False
        ),
    ],  # fmt: skip
    reference: Annotated[
        Path | None,
        typer.Option("--reference", help="Reference data (CSV or Parquet) for drift."),
    ] = None,
    trust_pickle: Annotated[
        bool,
        typer.Option("--trust-pickle", help="Allow a .pkl/.joblib file (runs its code!)."),
    ] = False,
    trust_type: Annotated[
        list[str] | None,
        typer.Option(
            "--trust-type",
            help="A type name outside mlgate's allowlist that you have reviewed, e.g. your own "
            "transformer class or function (repeatable; recorded in the manifest).",
        ),
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="KEY=VALUE tag (repeatable).")
    ] = None,
    flavor: Annotated[
        str | None, typer.Option("--flavor", help="Store as 'sklearn' or 'onnx' (default: as is).")
    ] = None,
    promote: Annotated[
        bool, typer.Option("--promote", help="Route all traffic to this version at once.")
    ] = False,
    recipe: Annotated[
        str | None,
        typer.Option(
            "--recipe",
            help="How the trainer retrains it: package.module:function, called as "
            "function(frame, target) -> fitted estimator (recorded in the manifest).",
        ),
    ] = None,
    registry: RegistryOption = None,
    home: HomeOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Register a model file as the next version of NAME; prints the new version."""
    tags = _tags(tag)
    if recipe is not None and not _is_entry_point(recipe):
        fail(f"--recipe: expected package.module:function, got {recipe!r}")
    if flavor is not None and flavor not in ("sklearn", "onnx"):
        fail(f"--flavor: expected 'sklearn' or 'onnx', got {flavor!r}")
    reg = open_registry(home, registry)
    mv = registry_call(
        lambda: reg.register(name, path, reference=reference, tags=tags, flavor=flavor,
                             trust_pickle=trust_pickle, trusted_types=trust_type or (),
                             promote=promote, recipe=recipe)
    )  # fmt: skip
    _save_runtime(reg, mv, home, registry)
    if fmt is OutputFormat.json:
        print_json(msgspec.to_builtins(mv))
        return
    route = registry_call(lambda: reg.route(name))
    role = "champion" if route.champion == mv.version else "no traffic yet"
    console.print(
        f"registered [bold]{name}[/] version [bold]{mv.version}[/] "
        f"({mv.flavor}, {len(mv.input_schema)} features, sha256 {_short(mv.sha256)}; {role})",
        highlight=False,
    )


def _save_runtime(reg: Registry, mv: ModelVersion, home: str | None, url: str | None) -> None:
    """Compile the new version once into this machine's runtime cache, so that the next
    ``mlgate serve`` loads its arrays instead of importing scikit-learn (see
    ``gateway.loading``). Best effort: registration has succeeded whatever happens here, and
    the gateway compiles (and reports) anything this could not."""
    if mv.flavor != "sklearn":
        return
    from gateway.loading import load_runtime
    from gateway.runtimes import UnsupportedModel
    from gateway.settings import GatewaySettings, SettingsError

    try:
        settings = GatewaySettings.from_mapping(locations(home, url).section("gateway"))
    except (SettingsError, ValueError):
        return
    saved = settings.saved_runtimes()
    if saved is None or settings.backend not in ("auto", "numba"):
        return
    try:
        load_runtime(reg, mv, backend="numba", fallback=False, saved=saved)
    except UnsupportedModel:
        return  # served by the sklearn backend: nothing to save
    except Exception as exc:  # noqa: BLE001 - the version is registered: a cache miss at most
        err_console.print(f"note: its compiled runtime was not saved ({exc})", highlight=False)


def _row(name: str, versions: list[ModelVersion], route: Route) -> dict[str, Any]:
    latest = versions[-1] if versions else None
    return {
        "name": name,
        "versions": len(versions),
        "latest": latest.version if latest else None,
        "champion": route.champion,
        "canary": msgspec.to_builtins(route.canary) if route.canary else None,
        "shadows": [s.version for s in route.shadows],
        "flavor": latest.flavor if latest else None,
        "updated_at": route.updated_at or (latest.created_at if latest else None),
    }


@group.command("list")
def list_models(
    registry: RegistryOption = None,
    home: HomeOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """List the registered models with their routes."""
    reg = open_registry(home, registry)
    rows = []
    for name in registry_call(reg.list):
        versions = registry_call(lambda name=name: reg.versions(name))  # type: ignore[misc]
        rows.append(_row(name, versions, registry_call(lambda name=name: reg.route(name))))  # type: ignore[misc]
    if fmt is OutputFormat.json:
        print_json(rows)
        return
    if not rows:
        console.print(f"no models in {reg.url}", highlight=False)
        return
    table = Table(title=f"models in {reg.url}")
    table.add_column("model", no_wrap=True)
    for header in ("versions", "latest", "champion", "canary", "shadows"):
        table.add_column(header, justify="right")
    table.add_column("updated (UTC)", no_wrap=True)
    for r in rows:
        canary = f"v{r['canary']['version']} {r['canary']['weight']:g}%" if r["canary"] else "-"
        table.add_row(r["name"], str(r["versions"]), str(r["latest"]), str(r["champion"] or "-"),
                      canary, ",".join(map(str, r["shadows"])) or "-",
                      (r["updated_at"] or "-")[:19].replace("T", " "))  # fmt: skip
    console.print(table)


def _show_version(mv: ModelVersion, route: Route) -> None:
    role = _role(mv.version, route)
    lin = mv.lineage
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    for key, value in [
        ("model", f"{mv.name} version {mv.version}"),
        ("route", role if role != "-" else "no traffic"),
        ("flavor", f"{mv.flavor} ({mv.artifact})"),
        ("sha256", f"{mv.sha256} (verified)"),
        ("task", mv.output_schema.task),
        ("classes", ", ".join(map(str, mv.output_schema.classes or [])) or "-"),
        ("created", mv.created_at),
        ("tags", ", ".join(f"{k}={v}" for k, v in mv.tags.items()) or "-"),
        ("reference", f"{lin.rows} rows, fingerprint {_short(lin.data_fingerprint)}"
         if mv.reference else "none"),
        ("trigger", lin.trigger or "-"),
        ("parent", str(lin.parent_version) if lin.parent_version else "-"),
        ("metrics", ", ".join(f"{k}={v:g}" for k, v in lin.metrics.items()) or "-"),
        ("code", lin.code_version or "-"),
    ]:  # fmt: skip
        info.add_row(key, str(value))
    console.print(info)
    features = Table("#", "feature", "dtype", "categories", title="inputs")
    for i, f in enumerate(mv.input_schema.features):
        cats = ", ".join(map(str, f.categories[:8])) + (" …" if len(f.categories) > 8 else "") \
            if f.categories is not None else "-"  # fmt: skip
        features.add_row(str(i), f.name, f.dtype, cats)
    console.print(features)


@group.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Model name.", show_default=False)],
    version: Annotated[
        str | None,
        typer.Argument(
            help="Version number or alias (champion, canary, latest).", show_default=False
        ),
    ] = None,
    registry: RegistryOption = None,
    home: HomeOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Show a model (its route and versions), or one version's manifest."""
    reg = open_registry(home, registry)
    if version is not None:
        mv = registry_call(lambda: reg.get(name, version))
        registry_call(
            lambda: reg.artifact_bytes(mv)
        )  # a corrupt artifact is an error, not a detail
        route = registry_call(lambda: reg.route(name))
        if fmt is OutputFormat.json:
            print_json(msgspec.to_builtins(mv))
        else:
            _show_version(mv, route)
        return
    versions = registry_call(lambda: reg.versions(name))
    route = registry_call(lambda: reg.route(name))
    if fmt is OutputFormat.json:
        print_json({"name": name, "route": msgspec.to_builtins(route),
                    "versions": msgspec.to_builtins(versions)})  # fmt: skip
        return
    row = _row(name, versions, route)
    canary = (
        f"v{row['canary']['version']} at {row['canary']['weight']:g}%" if row["canary"] else "none"
    )
    console.print(f"[bold]{name}[/]: champion v{route.champion}, canary {canary}, "
                  f"route generation {route.generation}", highlight=False)  # fmt: skip
    table = Table("version", "route", "flavor", "task", "features", "created (UTC)", "tags")
    for mv in versions:
        table.add_row(str(mv.version), _role(mv.version, route), mv.flavor, mv.output_schema.task,
                      str(len(mv.input_schema)), mv.created_at[:19].replace("T", " "),
                      ", ".join(f"{k}={v}" for k, v in mv.tags.items()) or "-")  # fmt: skip
    console.print(table)
