"""Errors raised by the inference runtimes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable


class UnsupportedModel(TypeError):
    """A backend cannot compile this model.

    The message names the model's class and lists what the backend supports, so the caller
    (registry, gateway) can fall back to another backend or tell the user what to change.
    """

    def __init__(self, model: object, *, backend: str, reason: str, supported: Iterable[str]):
        self.model_class = type(model).__name__
        self.backend = backend
        self.reason = reason
        self.supported = tuple(supported)
        super().__init__(
            f"{backend} backend cannot compile {self.model_class}: {reason}; "
            f"supported: {', '.join(self.supported)}"
        )
