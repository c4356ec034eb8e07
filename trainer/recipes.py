"""Recipes: how a candidate estimator is built and fitted.

A recipe is one of

- ``clone``: the champion's own estimator, unfitted with its parameters
  (``sklearn.base.clone``) and refitted on the new rows (the default);
- ``builtin:<name>``: one of the candidates mlgate knows (``hist_gradient_boosting``,
  ``random_forest``, ``linear``), in its classifier or regressor form;
- ``package.module:function``: the user's entry point, called as
  ``function(frame, target) -> fitted estimator`` with a polars frame of the features and the
  label column ``target``.

Everything here runs in the fitting process (:mod:`trainer.fit`), never in a server.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

from trainer.errors import RunFailed, RunSkipped

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from registry import ModelVersion
    from trainer.settings import TrainerSettings

CLONE = "clone"
BUILTIN = "builtin:"


def champion_recipe(settings: TrainerSettings, champion: ModelVersion) -> str:
    """The recipe of the "champion" candidate: the configured one, else the one recorded in
    the champion's manifest, else a clone of its estimator (sklearn flavor only).

    An ONNX-only champion has no estimator to clone: without a recipe it is skipped.
    """
    if settings.recipe:
        return settings.recipe
    recorded = champion.lineage.recipe
    if recorded and recorded != CLONE and not recorded.startswith(BUILTIN):
        return recorded
    if recorded and recorded.startswith(BUILTIN):
        return recorded
    if champion.flavor != "sklearn":
        raise RunSkipped(
            f"model {champion.name!r} v{champion.version} is stored as ONNX only: there is no "
            "estimator to clone; set a recipe (`mlgate models register ... --recipe "
            "pkg.mod:build` or `recipe` in [trainer] of mlgate.toml) to retrain it"
        )
    return CLONE


def candidate_recipes(settings: TrainerSettings, champion: ModelVersion) -> list[tuple[str, str]]:
    """(candidate name, recipe) for each configured candidate."""
    out = []
    for name in settings.candidates:
        if name == "champion":
            out.append((name, champion_recipe(settings, champion)))
        else:
            out.append((name, BUILTIN + name))
    return out


def load_entry_point(recipe: str) -> Any:
    """The function named by ``package.module:function``; ``RunFailed`` naming what is wrong."""
    module_name, _, attr = recipe.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - a user module may raise anything on import
        raise RunFailed(
            f"recipe {recipe!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise RunFailed(f"recipe {recipe!r}: {module_name} has no function {attr!r}")
    return fn


def builtin_estimator(name: str, task: str, *, threads: int) -> Any:
    """An unfitted estimator for a built-in candidate."""
    if name == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = (
            HistGradientBoostingClassifier
            if task == "classification"
            else (HistGradientBoostingRegressor)
        )
        return cls(max_iter=200, random_state=0)
    if name == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        forest = RandomForestClassifier if task == "classification" else RandomForestRegressor
        return forest(n_estimators=100, min_samples_leaf=2, n_jobs=threads, random_state=0)
    if name == "linear":
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        last = LogisticRegression(max_iter=1000) if task == "classification" else Ridge()
        return make_pipeline(StandardScaler(), last)
    raise RunFailed(f"unknown built-in candidate {name!r}")


def fit_estimator(estimator: Any, X: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> Any:
    """``estimator.fit`` with sample weights when it takes them and they are not all 1."""
    params = inspect.signature(estimator.fit).parameters
    if weights is not None and "sample_weight" in params and (weights != 1).any():
        return estimator.fit(X, y, sample_weight=weights)
    return estimator.fit(X, y)


def build(
    recipe: str,
    *,
    task: str,
    unfitted: Any,
    frame: pl.DataFrame,
    target: str,
    X: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None,
    threads: int,
) -> Any:
    """Fit one candidate by its recipe and return the fitted estimator."""
    if recipe == CLONE:
        if unfitted is None:
            raise RunFailed("recipe 'clone': the champion's estimator was not given")
        return fit_estimator(unfitted, X, y, weights)
    if recipe.startswith(BUILTIN):
        est = builtin_estimator(recipe[len(BUILTIN) :], task, threads=threads)
        return fit_estimator(est, X, y, weights)
    fn = load_entry_point(recipe)
    fitted = fn(frame, target)
    if fitted is None or not hasattr(fitted, "predict"):
        raise RunFailed(
            f"recipe {recipe!r}: expected a fitted estimator with predict(), "
            f"got {type(fitted).__name__}"
        )
    return fitted
