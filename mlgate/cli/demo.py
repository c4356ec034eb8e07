"""``mlgate demo``: the end-to-end tour on embedded defaults.

Stage 1 (registry): train a small classifier on scikit-learn's bundled breast-cancer data,
register it with a reference sample of its training data, then list and show it. Later
stages (serve, query, monitor, roll out) are added as further steps of :func:`run_demo`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import typer
from rich.console import Console

from mlgate.cli.common import HomeOption, OutputFormat, RegistryOption, console
from registry import ModelVersion, Registry

DEMO_MODEL = "breast-cancer"
REFERENCE_ROWS = 200


@dataclass(frozen=True)
class DemoData:
    """The demo's training and holdout split, features as polars frames."""

    X_train: pl.DataFrame
    X_test: pl.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray


def load_data(*, seed: int = 0) -> DemoData:
    """Breast-cancer data (bundled with scikit-learn), snake_case feature names, 75/25 split."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bunch = load_breast_cancer()
    names = [str(n).replace(" ", "_") for n in bunch.feature_names]
    X = pl.DataFrame(bunch.data, schema=names, orient="row")
    train_idx, test_idx = train_test_split(
        np.arange(X.height), test_size=0.25, random_state=seed, stratify=bunch.target
    )
    return DemoData(X[train_idx], X[test_idx], bunch.target[train_idx], bunch.target[test_idx])


def train_model(data: DemoData) -> tuple[Any, dict[str, float]]:
    """A scaled logistic regression and its holdout metrics."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(data.X_train, data.y_train)
    proba = model.predict_proba(data.X_test)[:, 1]
    metrics = {
        "accuracy": float(accuracy_score(data.y_test, model.predict(data.X_test))),
        "auc": float(roc_auc_score(data.y_test, proba)),
    }
    return model, metrics


def register_model(
    reg: Registry, model: Any, data: DemoData, metrics: dict[str, float]
) -> ModelVersion:
    """Register the model with a reference sample of its training rows."""
    reference = data.X_train.sample(n=min(REFERENCE_ROWS, data.X_train.height), seed=0)
    return reg.register(
        DEMO_MODEL, model, reference=reference, metrics=metrics,
        tags={"dataset": "sklearn.breast_cancer", "source": "mlgate demo"},
    )  # fmt: skip


def run_demo(*, registry_url: str, out: Console | None = None) -> ModelVersion:
    """Run the demo's steps against the registry at ``registry_url``; returns the version."""
    from mlgate.cli import models

    out = out or console
    reg = Registry(registry_url)
    out.rule("1. train")
    data = load_data()
    model, metrics = train_model(data)
    out.print(f"logistic regression on breast_cancer: {data.X_train.height} training rows, "
              f"holdout accuracy {metrics['accuracy']:.3f}, AUC {metrics['auc']:.3f}")  # fmt: skip
    out.rule("2. register")
    mv = register_model(reg, model, data, metrics)
    out.print(f"registered {mv.name} version {mv.version} in {reg.url}", highlight=False)
    out.rule("3. list")
    models.list_models(registry=registry_url, home=None, fmt=OutputFormat.table)
    out.rule("4. show")
    models.show(name=mv.name, version=str(mv.version), registry=registry_url, home=None,
                fmt=OutputFormat.table)  # fmt: skip
    return mv


def attach(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(registry: RegistryOption = None, home: HomeOption = None) -> None:
        """Train, register, list and show a model (the tour on embedded defaults)."""
        from mlgate.cli.models import open_registry

        url = open_registry(home, registry).url
        run_demo(registry_url=url)
        console.print(f"\ndone: registry at {url}", highlight=False)

    del demo
