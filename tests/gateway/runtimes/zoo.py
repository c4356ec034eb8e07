"""Small fitted models covering every estimator the numba backend supports."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

N_FEATURES = 6
N_CATEGORIES = 4  # categorical columns take the codes 0..3


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], Any]
    data: str  # "binary" | "multi" | "regression" | "categorical" | "mixed"
    nan_train: bool = False  # fit with NaN in the training data
    labels: tuple[Any, ...] | None = None  # relabel classes (strings, sparse ints)
    unit_scale: bool = False  # keep features at unit scale (plain SGD diverges otherwise)


def _mlp(cls: type, activation: str) -> Callable[[], Any]:
    return lambda: cls(hidden_layer_sizes=(8,), activation=activation, max_iter=80, random_state=0)


CASES = [
    Case("logreg_binary", lambda: LogisticRegression(), "binary"),
    Case("logreg_multinomial", lambda: LogisticRegression(), "multi", labels=(-1, 3, 7)),
    Case("logreg_ovr", lambda: OneVsRestClassifier(LogisticRegression()), "multi"),
    Case(
        "sgd_log_multi",
        lambda: SGDClassifier(loss="log_loss", random_state=0),
        "multi",
        unit_scale=True,
    ),
    Case(
        "sgd_log_binary",
        lambda: SGDClassifier(loss="log_loss", random_state=0),
        "binary",
        unit_scale=True,
    ),
    Case("sgd_hinge", lambda: SGDClassifier(random_state=0), "multi", unit_scale=True),
    Case("linear_regression", lambda: LinearRegression(), "regression"),
    Case("ridge", lambda: Ridge(), "regression"),
    Case("lasso", lambda: Lasso(alpha=0.1), "regression"),
    Case("elastic_net", lambda: ElasticNet(alpha=0.1), "regression"),
    Case("sgd_regressor", lambda: SGDRegressor(random_state=0), "regression", unit_scale=True),
    Case(
        "tree_clf",
        lambda: DecisionTreeClassifier(max_depth=6, random_state=0),
        "multi",
        nan_train=True,
        labels=("a", "b", "c"),
    ),
    Case("tree_reg", lambda: DecisionTreeRegressor(max_depth=6, random_state=0), "regression"),
    Case(
        "forest_clf",
        lambda: RandomForestClassifier(12, max_depth=6, random_state=0),
        "multi",
        nan_train=True,
    ),
    Case(
        "forest_reg",
        lambda: RandomForestRegressor(12, max_depth=6, random_state=0),
        "regression",
        nan_train=True,
    ),
    Case("extra_clf", lambda: ExtraTreesClassifier(12, max_depth=6, random_state=0), "binary"),
    Case(
        "extra_reg",
        lambda: ExtraTreesRegressor(12, max_depth=6, random_state=0),
        "regression",
        nan_train=True,
    ),
    Case(
        "gb_binary", lambda: GradientBoostingClassifier(n_estimators=15, random_state=0), "binary"
    ),
    Case("gb_multi", lambda: GradientBoostingClassifier(n_estimators=10, random_state=0), "multi"),
    Case(
        "gb_reg", lambda: GradientBoostingRegressor(n_estimators=15, random_state=0), "regression"
    ),
    Case(
        "hgb_binary", lambda: HistGradientBoostingClassifier(max_iter=15), "binary", nan_train=True
    ),
    Case("hgb_multi", lambda: HistGradientBoostingClassifier(max_iter=10), "multi"),
    Case(
        "hgb_reg", lambda: HistGradientBoostingRegressor(max_iter=15), "regression", nan_train=True
    ),
    Case(
        "hgb_poisson", lambda: HistGradientBoostingRegressor(loss="poisson", max_iter=10), "count"
    ),
    Case(
        "hgb_categorical",
        lambda: HistGradientBoostingClassifier(max_iter=10, categorical_features=[0, 1]),
        "mixed",
        nan_train=True,
    ),
    Case("mlp_relu", _mlp(MLPClassifier, "relu"), "multi"),
    Case("mlp_tanh", _mlp(MLPClassifier, "tanh"), "binary"),
    Case("mlp_logistic", _mlp(MLPClassifier, "logistic"), "multi"),
    Case("mlp_identity", _mlp(MLPClassifier, "identity"), "binary"),
    Case("mlp_regressor", _mlp(MLPRegressor, "relu"), "regression"),
    Case(
        "pipe_standard_logreg",
        lambda: make_pipeline(StandardScaler(), LogisticRegression()),
        "multi",
    ),
    Case(
        "pipe_minmax_forest",
        lambda: make_pipeline(
            MinMaxScaler(clip=True), RandomForestClassifier(8, max_depth=5, random_state=0)
        ),
        "binary",
    ),
    Case("pipe_maxabs_ridge", lambda: make_pipeline(MaxAbsScaler(), Ridge()), "regression"),
    Case(
        "pipe_robust_mlp",
        lambda: make_pipeline(
            RobustScaler(), MLPRegressor(hidden_layer_sizes=(8,), max_iter=80, random_state=0)
        ),
        "regression",
    ),
    Case(
        "pipe_impute_standard_logreg",
        lambda: make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()),
        "binary",
        nan_train=True,
    ),
    Case(
        "pipe_impute_hgb",
        lambda: make_pipeline(
            SimpleImputer(strategy="median"), HistGradientBoostingRegressor(max_iter=10)
        ),
        "regression",
        nan_train=True,
    ),
    Case(
        "pipe_onehot_logreg",
        lambda: make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression()),
        "categorical",
    ),
    Case(
        "pipe_onehot_scaler_tree",
        lambda: make_pipeline(
            OneHotEncoder(), MaxAbsScaler(), DecisionTreeClassifier(random_state=0)
        ),
        "categorical",
    ),
    Case(
        "pipe_ordinal_gb",
        lambda: make_pipeline(
            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
            GradientBoostingRegressor(n_estimators=10, random_state=0),
        ),
        "categorical_reg",
    ),
]


def training_data(case: Case) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 300
    if case.data in ("regression", "count"):
        X, y = make_regression(n, N_FEATURES, n_informative=4, noise=1.0, random_state=0)
        if case.data == "count":
            y = rng.poisson(np.exp(X[:, 0] * 0.5))
    else:
        classes = 2 if case.data in ("binary", "mixed") else 3
        X, y = make_classification(
            n, N_FEATURES, n_informative=4, n_redundant=1, n_classes=classes, random_state=0
        )
    if not case.unit_scale:
        X = X * np.array([1.0, 10.0, 0.1, 100.0, 1.0, 3.0])[:N_FEATURES]
    if case.data.startswith("categorical") or case.data == "mixed":
        codes = rng.integers(0, N_CATEGORIES, size=(n, N_FEATURES)).astype(np.float64)
        ncat = N_FEATURES if case.data.startswith("categorical") else 2
        X[:, :ncat] = codes[:, :ncat]
        if case.data == "categorical":
            y = (codes[:, 0] + codes[:, 1] + rng.integers(0, 2, n) > 3).astype(int)
        elif case.data == "categorical_reg":
            y = codes[:, 0] * 2.0 + codes[:, 2] + rng.normal(size=n)
    if case.nan_train:
        X[rng.random(X.shape) < 0.05] = np.nan
    if case.labels is not None:
        y = np.asarray(case.labels)[y]
    return X, y


def fit(case: Case) -> Any:
    X, y = training_data(case)
    model = case.make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return model


def sample_rows(case: Case, n: int, seed: int) -> np.ndarray:
    """Held-out rows in the training distribution (float32)."""
    X, _ = training_data(case)
    rng = np.random.default_rng(seed)
    rows = X[rng.integers(0, X.shape[0], n)] * rng.normal(1.0, 0.05, size=(n, X.shape[1]))
    if case.data.startswith("categorical") or case.data == "mixed":
        ncat = N_FEATURES if case.data.startswith("categorical") else 2
        rows[:, :ncat] = rng.integers(0, N_CATEGORIES + 1, size=(n, ncat))  # N_CATEGORIES unseen
    return rows.astype(np.float32)
