"""Protocol codecs: request bodies in, model inputs out; model outputs in, response bodies out.

Model-agnostic and HTTP-framework-free: each codec parses bytes into a payload whose
``to_matrix(spec)`` builds the validated ``float32[n, d]`` for the version chosen by routing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from gateway.schema import InputSpec, OutputSpec


class Payload(Protocol):
    """A parsed request body, not yet bound to a model version."""

    def to_matrix(self, inputs: InputSpec, outputs: OutputSpec) -> np.ndarray:
        """The validated ``float32[n, d]`` for ``inputs`` (and checks asked ``outputs``);
        raises ``BadRequest``."""
        ...
