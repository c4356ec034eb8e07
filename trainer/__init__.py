"""The trainer: drift alert -> retraining run -> gate -> registered version -> rollout.

Public surface::

    from trainer import retrain
    run = retrain("churn")        # -> RunRecord: trigger, rows, metrics, status, version or None
    TrainerSettings.from_mapping(toml["trainer"]) ; TrainerService(RunContext(...)).run(stop)
    history(registry, "churn")    # -> every RunRecord of the model, oldest first
"""

from trainer.api import context, history, retrain
from trainer.errors import LeaseLost, RunFailed, RunInProgress, RunSkipped, TrainerError
from trainer.records import RunRecord, Trigger
from trainer.run import RunContext
from trainer.service import TrainerService
from trainer.settings import TrainerSettings, TrainerSettingsError

__all__ = [
    "LeaseLost",
    "RunContext",
    "RunFailed",
    "RunInProgress",
    "RunRecord",
    "RunSkipped",
    "TrainerError",
    "TrainerService",
    "TrainerSettings",
    "TrainerSettingsError",
    "Trigger",
    "context",
    "history",
    "retrain",
]
