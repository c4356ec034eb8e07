"""``retrain`` and ``history``: the trainer from Python (and from ``mlgate trainer``)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry import ModelNotFound, Registry
from trainer import claims
from trainer.records import RunRecord, RunStore, Trigger, utc_now
from trainer.run import RunContext, execute, new_record
from trainer.settings import TrainerSettings, TrainerSettingsError

if TYPE_CHECKING:
    from trainer.run import Progress


def _settings_from_file(path: Path) -> TrainerSettings:
    if not path.exists():
        return TrainerSettings()
    try:
        with path.open("rb") as f:
            section = tomllib.load(f).get("trainer", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TrainerSettingsError(f"{path}: cannot read configuration: {exc}") from exc
    return TrainerSettings.from_mapping(section)


def _logs_url(registry: Registry) -> str:
    url = os.environ.get("MLGATE_LOGS")
    if url:
        return url
    home = os.environ.get("MLGATE_HOME") or "./.mlgate"
    return str(Path(home).expanduser().resolve() / "logs")


def context(
    registry: Registry | str | None = None,
    *,
    logs: str | None = None,
    settings: TrainerSettings | None = None,
    storage_options: dict[str, Any] | None = None,
) -> RunContext:
    """A run context: ``registry`` (a Registry, a URL, or ``MLGATE_REGISTRY``/home),
    ``logs`` (URL, else ``MLGATE_LOGS``, else ``$MLGATE_HOME/logs``), settings (else the
    ``[trainer]`` table of ``./mlgate.toml``, else the defaults)."""
    if registry is None:
        reg = Registry.from_env(storage_options=storage_options)
    elif isinstance(registry, str):
        reg = Registry(registry, storage_options=storage_options)
    else:
        reg = registry
    return RunContext(
        registry=reg,
        logs_url=logs or _logs_url(reg),
        settings=settings or _settings_from_file(Path.cwd() / "mlgate.toml"),
        storage_options=storage_options,
        start_rollout=_analysed_rollout(),
    )


def _analysed_rollout() -> Any:
    """The analysed rollout controller's start function when it is installed, else None
    (the run then starts a timed canary plan itself)."""
    return None


def retrain(
    name: str,
    *,
    registry: Registry | str | None = None,
    logs: str | None = None,
    settings: TrainerSettings | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    storage_options: dict[str, Any] | None = None,
    ctx: RunContext | None = None,
) -> RunRecord:
    """Retrain ``name`` now (trigger ``manual``) and return the run's record.

    Raises ``ModelNotFound`` for a name the registry does not know and ``RunInProgress``
    while another run of the model holds its lease; every other problem (no labels, a
    failing recipe, a storage error) ends the run, and the record says why.
    """
    ctx = ctx or context(registry, logs=logs, settings=settings, storage_options=storage_options)
    if name not in ctx.registry.list():
        raise ModelNotFound(f"model {name!r} is not registered in {ctx.registry.url}")
    record = new_record(
        name, Trigger(kind="manual", at=utc_now()), owner=ctx.owner, dry_run=dry_run
    )
    lease = claims.Lease(
        run_id=record.run_id,
        owner=ctx.owner,
        expires_at=ctx.clock() + ctx.settings.lease_s,
        trigger=record.trigger,
    )
    claims.acquire(ctx.states, name, lease, now=ctx.clock())
    return execute(ctx, record, progress=progress)


def history(registry: Registry, name: str) -> list[RunRecord]:
    """Every run of ``name``, oldest first."""
    return RunStore(registry).history(name)
