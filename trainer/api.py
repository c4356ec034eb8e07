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
    from trainer.promotion import RolloutPlan
    from trainer.run import Progress


def _section(path: Path, name: str) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as f:
            section = tomllib.load(f).get(name, {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TrainerSettingsError(f"{path}: cannot read configuration: {exc}") from exc
    if not isinstance(section, dict):
        raise TrainerSettingsError(f"{path}: [{name}] must be a table")
    return section


def _logs_url() -> str:
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
    plan: RolloutPlan | None = None,
    storage_options: dict[str, Any] | None = None,
) -> RunContext:
    """A run context: ``registry`` (a Registry, a URL, or ``MLGATE_REGISTRY``/home),
    ``logs`` (URL, else ``MLGATE_LOGS``, else ``$MLGATE_HOME/logs``), settings and rollout
    plan (else the ``[trainer]`` and ``[rollout]`` tables of ``./mlgate.toml``, else the
    defaults)."""
    from trainer.promotion import RolloutController, RolloutPlan

    config = Path.cwd() / "mlgate.toml"
    if registry is None:
        reg = Registry.from_env(storage_options=storage_options)
    elif isinstance(registry, str):
        reg = Registry(registry, storage_options=storage_options)
    else:
        reg = registry
    logs_url = logs or _logs_url()
    plan = plan or RolloutPlan.from_mapping(_section(config, "rollout"))
    return RunContext(
        registry=reg,
        logs_url=logs_url,
        settings=settings or TrainerSettings.from_mapping(_section(config, "trainer")),
        storage_options=storage_options,
        controller=RolloutController(reg, logs_url, plan, actor="trainer"),
    )


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
