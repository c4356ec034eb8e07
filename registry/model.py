"""Plain data types of the control plane: manifests and routes."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Flavor = Literal["onnx", "sklearn"]
Task = Literal["classification", "regression"]


class Feature(msgspec.Struct, frozen=True):
    """One input column. ``dtype`` is a numpy dtype name (``float32``, ``int64``, ``object``…);
    ``categories`` lists the allowed values of a categorical feature (None for numeric)."""

    name: str
    dtype: str = "float32"
    categories: list[Any] | None = None

    @property
    def is_categorical(self) -> bool:
        return self.categories is not None


class InputSchema(msgspec.Struct, frozen=True):
    features: list[Feature]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def __len__(self) -> int:
        return len(self.features)


class OutputSchema(msgspec.Struct, frozen=True):
    task: Task
    classes: list[Any] | None = None  # class labels in predict_proba column order


class Lineage(msgspec.Struct, frozen=True):
    data_fingerprint: str | None = None  # sha256 of the reference/training data
    rows: int | None = None
    params: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    code_version: str | None = None
    parent_version: int | None = None
    trigger: str | None = None  # "manual" | "drift" | "schedule" | …
    # how to retrain it: "clone" (of this estimator), "builtin:<name>" or "package.module:fn"
    recipe: str | None = None
    # a retrained version's training rows: first/last timestamps, the run that made it, and
    # the gate's figures (both models' metrics, interval, margin)
    time_range: dict[str, str | None] = {}
    run_id: str | None = None
    gate: dict[str, Any] = {}


class ModelVersion(msgspec.Struct, frozen=True):
    """The content of ``manifest.json``: one immutable registered version."""

    name: str
    version: int
    flavor: Flavor
    artifact: str  # file name inside the version directory
    sha256: str
    input_schema: InputSchema
    output_schema: OutputSchema
    lineage: Lineage
    created_at: str  # ISO-8601 UTC
    tags: dict[str, str] = {}
    reference: str | None = None  # "reference.parquet" when reference data was stored
    reference_sha256: str | None = None
    # the model's outputs on the reference (the log's prediction/proba_* columns), when stored
    reference_predictions: str | None = None  # "reference_predictions.parquet"
    reference_predictions_sha256: str | None = None
    # type names beyond mlgate's allowlist that the user trusted explicitly at registration
    trusted_types: list[str] = []


class Canary(msgspec.Struct, frozen=True):
    version: int
    weight: float  # percent of routing keys, 0..100


class Shadow(msgspec.Struct, frozen=True):
    version: int
    percent: float = 100.0  # percent of requests copied, 0..100


class Route(msgspec.Struct, frozen=True):
    """The content of ``route.json``. Every change bumps ``generation`` (compare-and-swap)."""

    champion: int | None = None
    canary: Canary | None = None
    shadows: list[Shadow] = []
    previous_champion: int | None = None
    rollout: dict[str, Any] | None = None  # plan and state of an automated rollout
    generation: int = 0
    updated_at: str | None = None

    def describe(self) -> str:
        """One line: champion, canary, shadows (for logs, the CLI and the dashboard).

        >>> Route(champion=1, canary=Canary(2, 10.0)).describe()
        'champion v1, canary v2 at 10%, no shadow'
        """
        champion = f"champion v{self.champion}" if self.champion is not None else "no champion"
        canary = (
            f"canary v{self.canary.version} at {self.canary.weight:g}%"
            if self.canary is not None
            else "no canary"
        )
        shadows = (
            "shadows " + ", ".join(f"v{s.version} ({s.percent:g}%)" for s in self.shadows)
            if self.shadows
            else "no shadow"
        )
        return f"{champion}, {canary}, {shadows}"

    def routed_versions(self) -> list[int]:
        """Every version that takes (or shadows) traffic under this route."""
        out: list[int] = []
        if self.champion is not None:
            out.append(self.champion)
        if self.canary is not None and self.canary.version not in out:
            out.append(self.canary.version)
        for s in self.shadows:
            if s.version not in out:
                out.append(s.version)
        return out


class Event(msgspec.Struct, frozen=True):
    """One line of ``events.jsonl``."""

    ts: str
    model: str
    kind: str  # "register" | "route" | "promote" | "rollback" | "rollout" | …
    version: int | None = None
    generation: int | None = None
    detail: dict[str, Any] = {}
    actor: str | None = None
