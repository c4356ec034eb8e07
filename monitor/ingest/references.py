"""What the monitor knows about one model version: schema, frozen profiles, binners.

Profiles are built the first time a version is seen and stored in the monitor's DuckDB
keyed by the reference's sha256 (and the model's, for the predictions' profile), so a
restart, or another version sharing the reference, reuses them unchanged.

The predictions' profile is built from the model's outputs on the reference, which the
registry stores at registration (``reference_predictions.parquet``): the monitor never
deserializes a model artifact for them. Only versions registered without that file (before
it existed, ONNX-flavored ones) fall back to loading the model (for scikit-learn models that
imports skops and scikit-learn: about a second and ~120 MiB) and scoring the reference here.
Given an executor, the profile is built on it while the caller goes on counting features;
``VersionContext.settle`` waits for it before the prediction counts are needed.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa

from monitor.stats.binning import NumericBinner
from monitor.stats.profile import (
    CATEGORICAL,
    ColumnProfile,
    ReferenceProfile,
    categorical_profile,
    numeric_profile,
)
from registry import logschema

if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable

    from monitor.config import MonitorConfig
    from monitor.store import MonitorStore

log = logging.getLogger(__name__)

PREDICTION = "@prediction"
SCORE = "@score"
ROLE_FEATURE = "feature"
ROLE_PREDICTION = "prediction"
ROLE_SCORE = "score"


class RegistryReader(Protocol):
    """The part of ``registry.Registry`` the monitor uses."""

    def list(self) -> builtins.list[str]: ...

    def versions(self, name: str) -> builtins.list[Any]: ...

    def load_reference_arrow(self, mv: Any) -> Any: ...

    def load_reference_predictions_arrow(self, mv: Any) -> Any: ...

    def load_model(self, mv: Any, *, trust_pickle: bool = False) -> object: ...

    def events(self, name: str) -> builtins.list[Any]: ...

    def record_event(
        self,
        name: str,
        kind: str,
        *,
        version: int | None = None,
        detail: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> Any: ...


@dataclass
class VersionContext:
    """Schema and frozen profiles of one model version, ready for counting."""

    model: str
    version: int
    task: str
    classes: list[str]
    features: list[Any]  # registry Feature objects, manifest order
    profile: ReferenceProfile | None = None
    prediction_profile: ReferenceProfile | None = None
    binners: dict[str, NumericBinner] = field(default_factory=dict)
    pending: Future[ReferenceProfile] | None = None  # predictions' profile being built

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def columns(self) -> list[ColumnProfile]:
        out: list[ColumnProfile] = []
        if self.profile is not None:
            out += self.profile.columns
        if self.prediction_profile is not None:
            out += self.prediction_profile.columns
        return out

    def binner(self, col: ColumnProfile) -> NumericBinner:
        key = f"{col.role}:{col.name}"
        if key not in self.binners:
            self.binners[key] = NumericBinner(col.boundaries)
        return self.binners[key]

    def proba_columns(self) -> list[str]:
        return [logschema.proba_column(c) for c in self.classes]

    def settle(self, store: MonitorStore, *, now: float) -> None:
        """Wait for the predictions' profile being built, store it (or record why not)."""
        if self.pending is None:
            return
        pending, self.pending = self.pending, None
        try:
            profile = pending.result()
        except Exception as exc:  # noqa: BLE001 - any model failure is recorded, not fatal
            store.record_problem(
                ts=now,
                kind="no_prediction_reference",
                model=self.model,
                version=self.version,
                detail=f"model {self.model} version {self.version}: cannot score the reference"
                f" ({type(exc).__name__}: {exc}); prediction drift is not computed",
            )
            return
        store.save_profile(profile, now=now)
        store.set_prediction_profile(self.model, self.version, profile.profile_id)
        self.prediction_profile = profile


def profile_key(kind: str, *parts: object) -> str:
    return ":".join([kind, *(str(p) for p in parts)])


def build_context(
    registry: RegistryReader,
    mv: Any,
    *,
    store: MonitorStore,
    config: MonitorConfig,
    now: float,
    executor: Executor | None = None,
) -> VersionContext:
    """Load or freeze the profiles of ``mv``; problems are recorded, never raised.

    With ``executor``, a missing predictions' profile is built there (``ctx.pending``).
    """
    classes = [str(c) for c in (mv.output_schema.classes or [])]
    ctx = VersionContext(
        model=mv.name,
        version=int(mv.version),
        task=str(mv.output_schema.task),
        classes=classes,
        features=list(mv.input_schema.features),
    )
    ref_sha = getattr(mv, "reference_sha256", None)
    if not ref_sha:
        store.record_problem(
            ts=now,
            kind="no_reference",
            model=mv.name,
            version=int(mv.version),
            detail=f"model {mv.name} version {mv.version}: no reference data registered;"
            " drift is not computed (performance still is)",
        )
        return ctx
    bins_tag = f"{config.bins}x{config.fine_bins}"
    fid = profile_key("features", ref_sha, bins_tag)
    pid = profile_key("predictions", ref_sha, mv.sha256, bins_tag)
    ctx.profile = store.load_profile(fid)
    ctx.prediction_profile = store.load_profile(pid)
    if ctx.profile is not None and ctx.prediction_profile is not None:
        return ctx
    reference = _reference_frame(registry, mv)
    if reference is None:
        store.record_problem(
            ts=now,
            kind="no_reference",
            model=mv.name,
            version=int(mv.version),
            detail=f"model {mv.name} version {mv.version}: reference.parquet is missing",
        )
        return ctx
    if ctx.profile is None:
        ctx.profile = feature_profile(fid, reference, ctx.features, config=config)
        store.save_profile(ctx.profile, now=now)
        for col in ctx.profile.columns:
            if col.constant:
                store.record_problem(
                    ts=now,
                    kind="constant_reference",
                    model=mv.name,
                    version=int(mv.version),
                    detail=f"feature {col.name!r}: reference has zero variance (std 0);"
                    " Wasserstein is not normalized, PSI/JS still apply",
                )
    if ctx.prediction_profile is None:
        ctx.pending = (executor or _Inline()).submit(
            prediction_profile, pid, registry, mv, reference, ctx, config=config
        )
        if executor is None:
            ctx.settle(store, now=now)
    return ctx


def _reference_frame(registry: RegistryReader, mv: Any) -> pa.Table | None:
    """The reference as a pyarrow Table: Arrow's pool gives the memory back after the
    profiles are built (polars' allocator would keep it, and polars costs ~30 MiB to load)."""
    return registry.load_reference_arrow(mv)  # type: ignore[no-any-return]


class _Inline:
    """Runs a submitted call at once (``build_context`` without an executor)."""

    def submit(
        self, fn: Callable[..., ReferenceProfile], /, *args: Any, **kwargs: Any
    ) -> Future[ReferenceProfile]:
        future: Future[ReferenceProfile] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - handed to settle(), which records it
            future.set_exception(exc)
        return future


def _is_number(t: pa.DataType) -> bool:
    """Profiled as numeric (booleans are categories, as in polars' ``is_numeric``)."""
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def as_floats(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as float64, nulls as NaN."""
    out = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(out, dtype=np.float64)


def as_texts(column: pa.ChunkedArray | pa.Array) -> list[object]:
    """Values rendered with ``str()``, nulls as None (how the gateway logs categories)."""
    return [None if v is None else str(v) for v in column.to_pylist()]


def feature_profile(
    profile_id: str, reference: pa.Table, features: list[Any], *, config: MonitorConfig
) -> ReferenceProfile:
    """Profile every manifest feature found in the reference table.

    Columns are profiled on two threads: numeric ones are mostly ``np.sort``, which
    releases the GIL.
    """

    def one(feat: Any) -> ColumnProfile:
        column = reference.column(feat.name)
        if feat.categories is not None or not _is_number(column.type):
            cats = None if feat.categories is None else [str(c) for c in feat.categories]
            return categorical_profile(feat.name, as_texts(column), categories=cats)
        x = as_floats(column)
        return numeric_profile(feat.name, x, bins=config.bins, fine_bins=config.fine_bins)

    names = set(reference.column_names)
    present = [f for f in features if f.name in names]
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlgate-profile-cols") as pool:
        cols = list(pool.map(one, present))
    return ReferenceProfile(profile_id=profile_id, columns=cols, rows=reference.num_rows)


def prediction_profile(
    profile_id: str,
    registry: RegistryReader,
    mv: Any,
    reference: pa.Table,
    ctx: VersionContext,
    *,
    config: MonitorConfig,
) -> ReferenceProfile:
    """Profile the model's outputs on the reference: the ones stored at registration, else
    (older versions) score the reference with the model here."""
    pred, proba = stored_outputs(registry.load_reference_predictions_arrow(mv), ctx)
    if pred is None:
        pred, proba = stored_outputs(score_reference(registry, mv, reference, ctx), ctx)
        if pred is None:
            raise ValueError(f"{mv.name} v{mv.version}: the model gave no predictions")
    cols: list[ColumnProfile] = []
    if ctx.task == "classification":
        labels = [str(v) for v in pred]
        cols.append(
            categorical_profile(
                PREDICTION, list(labels), categories=ctx.classes, role=ROLE_PREDICTION
            )
        )
        if proba is not None:
            cols.append(
                numeric_profile(
                    SCORE,
                    confidence(proba),
                    bins=config.bins,
                    fine_bins=config.fine_bins,
                    role=ROLE_SCORE,
                )
            )
    else:
        cols.append(
            numeric_profile(
                PREDICTION,
                np.asarray(pred, dtype=np.float64),
                bins=config.bins,
                fine_bins=config.fine_bins,
                role=ROLE_PREDICTION,
            )
        )
    return ReferenceProfile(profile_id=profile_id, columns=cols, rows=reference.num_rows)


def score_reference(
    registry: RegistryReader, mv: Any, reference: pa.Table, ctx: VersionContext
) -> pa.Table:
    """The model's outputs on its reference, for versions registered without them: the
    model is loaded and scored by the registry's one function (``registry.predictions``),
    the same outputs and labels as stored at registration and as the gateway serves."""
    import polars as pl  # this fallback only: versions registered without stored outputs

    from registry import predictions

    model = registry.load_model(mv)
    estimator = predictions.OnnxEstimator(bytes(model)) if isinstance(model, bytes) else model
    frame = pl.from_arrow(reference)
    assert isinstance(frame, pl.DataFrame)
    scored = predictions.score(estimator, frame, ctx.feature_names, mv.output_schema)
    return scored.to_arrow()


def stored_outputs(
    table: pa.Table | None, ctx: VersionContext
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(predictions, probabilities or None)`` from the model's outputs on the reference
    (stored by the registry, or scored by ``score_reference``); ``(None, None)`` when there
    are none. A stored file that fails its hash check raises (``ArtifactCorrupt``) when it
    is loaded: ``settle`` records it, nothing falls back."""
    if table is None or "prediction" not in table.column_names:
        return None, None
    column = table.column("prediction")
    if ctx.task == "classification":
        pred = np.asarray(as_texts(column), dtype=object)
    else:
        pred = as_floats(column)
    names = ctx.proba_columns()
    proba = None
    if names and all(n in table.column_names for n in names):
        proba = np.column_stack([as_floats(table.column(n)) for n in names])
    return pred, proba


def confidence(proba: np.ndarray) -> np.ndarray:
    """Positive-class score for two classes, the top score otherwise.

    >>> confidence(np.array([[0.2, 0.8], [0.9, 0.1]])).tolist()
    [0.8, 0.1]
    """
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] == 0:
        return np.zeros(len(p))
    if p.shape[1] == 2:
        return p[:, 1]
    return np.asarray(np.fmax.reduce(p, axis=1), dtype=np.float64)


def is_categorical(col: ColumnProfile) -> bool:
    return col.kind == CATEGORICAL
