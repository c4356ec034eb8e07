"""The trainer's errors: each names the model, the rule and what was found."""

from __future__ import annotations


class TrainerError(Exception):
    """Base class of the trainer's errors."""


class RunFailed(TrainerError):
    """A run could not complete (bad recipe, wrong labels, storage error): it ends ``failed``."""


class RunSkipped(TrainerError):
    """A run ends without a candidate for a reason that is nobody's fault (too few labels,
    one class only, an ONNX-only model without a recipe): it ends ``skipped``."""


class RunInProgress(TrainerError):
    """Another run of this model holds the lease."""


class LeaseLost(TrainerError):
    """This process's lease on a run was taken over (it expired): the run must stop."""
