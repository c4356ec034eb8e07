"""Pipeline transformers -> program steps (element-wise) or a one-hot expansion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.runtimes.numba import program as pg

TRANSFORMERS = (
    "StandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "RobustScaler",
    "SimpleImputer",
    "OrdinalEncoder",
    "OneHotEncoder",
)


class StepError(Exception):
    """A transformer is configured in a way the numba backend does not reproduce."""


@dataclass(frozen=True)
class OneHot:
    """Column ``j`` expands to ``count[j]`` indicator columns starting at ``out_col[j]``."""

    start: np.ndarray  # int64 [d] into cats
    count: np.ndarray  # int64 [d]
    out_col: np.ndarray  # int64 [d]
    cats: np.ndarray  # float64
    ignore_unknown: bool
    n_out: int
    float32_out: bool


def add_transformer(builder: pg.ProgramBuilder, step: Any, *, float32: bool) -> bool:
    """Append ``step`` to ``builder``; return whether its output is float32."""
    name = type(step).__name__
    if name == "OrdinalEncoder":
        return _add_ordinal(builder, step)
    adders = {
        "StandardScaler": _add_standard,
        "MinMaxScaler": _add_minmax,
        "MaxAbsScaler": _add_maxabs,
        "RobustScaler": _add_robust,
        "SimpleImputer": _add_imputer,
    }
    if name not in adders:
        raise StepError(f"{name} is not an element-wise transformer")
    adders[name](builder, step, float32=float32)
    return float32


def _add_standard(builder: pg.ProgramBuilder, s: Any, *, float32: bool) -> None:
    # scikit-learn casts mean_ and scale_ to the input's dtype first (unlike the others)
    cast = np.float32 if float32 else np.float64
    if s.with_mean:
        mean = np.asarray(s.mean_).astype(cast)
        builder.add_uniform("StandardScaler.mean", pg.SUB, mean, round32=float32)
    if s.with_std:
        scale = np.asarray(s.scale_).astype(cast)
        builder.add_uniform("StandardScaler.scale", pg.DIV, scale, round32=float32)


def _add_clip(
    builder: pg.ProgramBuilder, name: str, low: float, high: float, float32: bool
) -> None:
    params = np.zeros((builder.n_features, 4))
    params[:, 0], params[:, 1] = low, high
    builder.add_step(name, np.full(builder.n_features, pg.CLIP), params, round32=float32)


def _add_minmax(builder: pg.ProgramBuilder, s: Any, *, float32: bool) -> None:
    builder.add_uniform("MinMaxScaler.scale", pg.MUL, s.scale_, round32=float32)
    builder.add_uniform("MinMaxScaler.min", pg.ADD, s.min_, round32=float32)
    if s.clip:
        low, high = s.feature_range
        _add_clip(builder, "MinMaxScaler.clip", low, high, float32)


def _add_maxabs(builder: pg.ProgramBuilder, s: Any, *, float32: bool) -> None:
    builder.add_uniform("MaxAbsScaler.scale", pg.DIV, s.scale_, round32=float32)
    if getattr(s, "clip", False):
        _add_clip(builder, "MaxAbsScaler.clip", -1.0, 1.0, float32)


def _add_robust(builder: pg.ProgramBuilder, s: Any, *, float32: bool) -> None:
    if s.with_centering:
        builder.add_uniform("RobustScaler.center", pg.SUB, s.center_, round32=float32)
    if s.with_scaling:
        builder.add_uniform("RobustScaler.scale", pg.DIV, s.scale_, round32=float32)


def nan_survives(step: Any, before: bool) -> bool:
    """Whether a NaN that reached ``step`` can still be NaN after it."""
    name = type(step).__name__
    if name == "SimpleImputer":
        return False
    if name != "OrdinalEncoder":
        return before
    unknown_nan = step.handle_unknown != "error" and np.isnan(step.unknown_value)
    missing_nan = bool(np.isnan(step.encoded_missing_value))
    for cats in step.categories_:
        has_nan = bool(np.isnan(np.asarray(cats, dtype=np.float64)).any())
        if (has_nan and missing_nan) or (not has_nan and unknown_nan):
            return before
    return False


def _add_imputer(builder: pg.ProgramBuilder, s: Any, *, float32: bool) -> None:
    missing = s.missing_values
    if not (isinstance(missing, float) and np.isnan(missing)):
        raise StepError(f"SimpleImputer(missing_values={missing!r}): only NaN is supported")
    if s.add_indicator:
        raise StepError("SimpleImputer(add_indicator=True) is not supported")
    stats = np.asarray(s.statistics_, dtype=np.float64)
    if np.isnan(stats).any():
        raise StepError("SimpleImputer with an all-missing column (it drops columns)")
    builder.add_uniform("SimpleImputer", pg.IMPUTE, stats, round32=float32)


def _check_encoder(s: Any) -> None:
    name = type(s).__name__
    if getattr(s, "max_categories", None) is not None or getattr(s, "min_frequency", None):
        raise StepError(f"{name} with infrequent categories is not supported")


def _add_ordinal(builder: pg.ProgramBuilder, s: Any) -> bool:
    _check_encoder(s)
    unknown = s.handle_unknown
    op = pg.ORDINAL_ERROR if unknown == "error" else pg.ORDINAL_VALUE
    unknown_value = s.unknown_value if unknown != "error" else np.nan
    params = np.zeros((builder.n_features, 4))
    for j, cats in enumerate(s.categories_):
        start, count = builder.add_categories(_numeric(cats, "OrdinalEncoder"))
        missing = s.encoded_missing_value
        params[j] = (start, count, unknown_value, missing)
    builder.add_step("OrdinalEncoder", np.full(builder.n_features, op), params, round32=False)
    return bool(np.dtype(s.dtype) == np.float32)


def _numeric(cats: np.ndarray, name: str) -> np.ndarray:
    if np.asarray(cats).dtype.kind not in "fiub":
        raise StepError(f"{name} with non-numeric categories (inputs are float32 codes)")
    return np.asarray(cats, dtype=np.float64)


def one_hot(s: Any) -> OneHot:
    _check_encoder(s)
    if s.drop_idx_ is not None:
        raise StepError("OneHotEncoder(drop=...) is not supported")
    if s.handle_unknown not in ("error", "ignore", "infrequent_if_exist"):
        raise StepError(f"OneHotEncoder(handle_unknown={s.handle_unknown!r})")
    cats_list = [_numeric(c, "OneHotEncoder") for c in s.categories_]
    count = np.array([len(c) for c in cats_list], dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    return OneHot(
        start=start,
        count=count,
        out_col=start.copy(),
        cats=np.concatenate(cats_list) if cats_list else np.zeros(1),
        ignore_unknown=s.handle_unknown != "error",
        n_out=int(count.sum()),
        float32_out=np.dtype(s.dtype) == np.float32,
    )
