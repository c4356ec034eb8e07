"""User recipes for the tests: ``build(frame, target) -> fitted estimator``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import polars as pl
from sklearn.ensemble import RandomForestClassifier


def forest(frame: pl.DataFrame, target: str) -> RandomForestClassifier:
    X = frame.drop(target).to_numpy()
    return RandomForestClassifier(n_estimators=30, random_state=0).fit(X, frame[target].to_numpy())


def broken(frame: pl.DataFrame, target: str) -> object:
    raise ValueError(f"this recipe refuses {frame.height} rows")


def returns_nothing(frame: pl.DataFrame, target: str) -> object:
    return None


def slow(frame: pl.DataFrame, target: str) -> RandomForestClassifier:
    """Announces itself in ``$MLGATE_TEST_FIT_DIR`` and waits for a ``release`` file there
    (lets a test kill the trainer mid-fit); then fits a forest."""
    folder = Path(os.environ["MLGATE_TEST_FIT_DIR"])
    (folder / f"fitting-{os.getpid()}").touch()
    deadline = time.monotonic() + 120
    while not (folder / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return forest(frame, target)
