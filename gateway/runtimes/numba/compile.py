"""Fitted scikit-learn estimator or pipeline -> ``NumbaRuntime``."""

from __future__ import annotations

from typing import Any

import numpy as np

from gateway.runtimes.errors import UnsupportedModel
from gateway.runtimes.numba import finish as fin
from gateway.runtimes.numba import program as pg
from gateway.runtimes.numba import steps as st
from gateway.runtimes.numba import trees_convert as tc
from gateway.runtimes.numba.forest import forest_parallel, forest_serial
from gateway.runtimes.numba.forest_direct import direct_forest
from gateway.runtimes.numba.linear import linear_predict
from gateway.runtimes.numba.mlp import ACTIVATIONS, mlp_predict, pack_layers
from gateway.runtimes.numba.runtime import Kernel, NumbaRuntime, OneHotStage, make_runtime

LINEAR_CLASSIFIERS = ("LogisticRegression", "SGDClassifier")
LINEAR_REGRESSORS = ("LinearRegression", "Ridge", "Lasso", "ElasticNet", "SGDRegressor")
FORESTS = (
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
)
BOOSTING = (
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
)
MLPS = ("MLPClassifier", "MLPRegressor")
SUPPORTED = (
    LINEAR_CLASSIFIERS
    + ("OneVsRestClassifier(LogisticRegression|SGDClassifier)",)
    + LINEAR_REGRESSORS
    + FORESTS
    + BOOSTING
    + MLPS
    + tuple(f"Pipeline step {t}" for t in st.TRANSFORMERS)
)
# Tree batches of at least this many rows run on numba's thread pool (0: never, the default).
# Measured on the shared 2-core box (benchmarks/RESULTS.md): with the second core idle, two
# threads pay from ~128 rows (1.8-2x on the boosted models at 256-4096 rows); with it busy
# they lost up to 3x (OpenMP waits on descheduled workers), in most runs. A gateway already
# runs one batch per batcher thread, so the default stays serial; pass parallel_rows=256 on
# machines with idle cores.
DEFAULT_PARALLEL_ROWS = 0


def compile_numba(model: Any, *, parallel_rows: int = DEFAULT_PARALLEL_ROWS) -> NumbaRuntime:
    """Compile ``model`` (a fitted estimator or Pipeline) or raise ``UnsupportedModel``."""
    steps, final = _split_pipeline(model)
    try:
        return _compile(model, steps, final, parallel_rows=parallel_rows)
    except st.StepError as exc:
        raise UnsupportedModel(
            model, backend="numba", reason=str(exc), supported=SUPPORTED
        ) from exc


def _split_pipeline(model: Any) -> tuple[list[Any], Any]:
    if type(model).__name__ != "Pipeline":
        return [], model
    steps = [s for _, s in model.steps if s is not None and s != "passthrough"]
    if not steps:
        raise UnsupportedModel(model, backend="numba", reason="empty pipeline", supported=SUPPORTED)
    return steps[:-1], steps[-1]


def _unsupported(model: Any, reason: str) -> UnsupportedModel:
    return UnsupportedModel(model, backend="numba", reason=reason, supported=SUPPORTED)


def _final_flags(final: Any) -> tuple[int, bool]:
    """What the final estimator refuses (NaN/inf flags) and whether it reads float32."""
    name = type(final).__name__
    if name.startswith("HistGradientBoosting"):
        return 0, False
    allow_nan = final.__sklearn_tags__().input_tags.allow_nan
    if name.startswith(("RandomForest", "ExtraTrees")):
        allow_nan = final.estimators_[0].__sklearn_tags__().input_tags.allow_nan
    flags = pg.REJECT_INF | (0 if allow_nan else pg.REJECT_NAN)
    return flags, name in FORESTS or name.startswith("GradientBoosting")


def _compile(model: Any, steps: list[Any], final: Any, *, parallel_rows: int) -> NumbaRuntime:
    name = type(final).__name__
    known = LINEAR_CLASSIFIERS + LINEAR_REGRESSORS + FORESTS + BOOSTING + MLPS
    if name not in known + ("OneVsRestClassifier",):
        raise _unsupported(model, "not a supported estimator")
    if not hasattr(final, "n_features_in_") and name != "OneVsRestClassifier":
        raise _unsupported(model, "the estimator is not fitted")
    first = steps[0] if steps else final
    n_features = int(first.n_features_in_)
    builder = pg.ProgramBuilder(n_features)
    float32 = True
    onehot: OneHotStage | None = None
    nan_survives = True  # can a NaN input still be NaN here?
    float32_values = True  # is every value here a float32 number (whatever its dtype)?
    for step in steps:
        step_name = type(step).__name__
        if step_name not in st.TRANSFORMERS:
            raise _unsupported(model, f"pipeline step {step_name} is not supported")
        builder.reject_after_last(pg.REJECT_INF)
        if step_name == "OneHotEncoder":
            if onehot is not None:
                raise _unsupported(model, "more than one OneHotEncoder")
            spec = st.one_hot(step)
            onehot = OneHotStage(builder.build(), spec)
            builder = pg.ProgramBuilder(spec.n_out)
            float32 = spec.float32_out
            nan_survives = False
            float32_values = True  # indicators are 0 or 1
            continue
        float32 = st.add_transformer(builder, step, float32=float32)
        float32_values = float32 or step_name == "OrdinalEncoder"  # codes are small integers
        nan_survives = st.nan_survives(step, nan_survives)
    flags, reads_float32 = _final_flags(final)
    if reads_float32 and not float32:
        builder.reject_after_last(pg.REJECT_INF)
        builder.add_step(
            "cast to float32",
            np.zeros(builder.n_features),
            np.zeros((builder.n_features, 4)),
            round32=True,
        )
    column_of = np.arange(builder.n_features)
    if name.startswith("HistGradientBoosting"):
        column_of = _hgb_categories(final, builder)
    builder.reject_after_last(flags)
    if nan_survives and flags & pg.REJECT_NAN:
        builder.reject_input(pg.REJECT_NAN)  # NaN cannot get through: refuse it up front
    program = builder.build()
    kernel, task, classes = _final_kernel(
        model, final, column_of, float32, float32_values, parallel_rows
    )
    input_reject = int((onehot.program if onehot else program).reject[0])
    allows_nan = not (input_reject & pg.REJECT_NAN)
    return make_runtime(
        n_features=n_features,
        task=task,
        classes=classes,
        allows_nan=allows_nan,
        program=program,
        kernel=kernel,
        onehot=onehot,
        model_name=type(model).__name__ if not steps else f"Pipeline({name})",
    )


def _hgb_categories(final: Any, builder: pg.ProgramBuilder) -> np.ndarray:
    """Reproduce HistGradientBoosting's internal ordinal encoding of categorical columns."""
    pre = final._preprocessor
    if pre is None:
        return np.arange(builder.n_features)
    is_cat = np.asarray(final.is_categorical_, dtype=bool)
    order = np.concatenate([np.flatnonzero(is_cat), np.flatnonzero(~is_cat)])
    encoder = pre.named_transformers_["encoder"]
    code = np.zeros(builder.n_features)
    code[is_cat] = pg.REFUSE_INF  # its OrdinalEncoder refuses infinity, numeric columns take it
    builder.add_step(
        "HistGradientBoosting finite check", code, np.zeros((len(code), 4)), round32=False
    )
    code = np.zeros(builder.n_features)
    params = np.zeros((builder.n_features, 4))
    for j, cats in zip(np.flatnonzero(is_cat), encoder.categories_, strict=True):
        start, count = builder.add_categories(np.asarray(cats, dtype=np.float64))
        code[j] = pg.ORDINAL_VALUE
        params[j] = (start, count, np.nan, np.nan)
    builder.add_step("HistGradientBoosting categories", code, params, round32=False)
    return order


def _final_kernel(
    model: Any,
    final: Any,
    column_of: np.ndarray,
    float32: bool,
    float32_values: bool,
    parallel_rows: int,
) -> tuple[Kernel, str, np.ndarray | None]:
    name = type(final).__name__
    if name in FORESTS or name in BOOSTING:
        tree = _tree_model(model, final, column_of, float32_values)
        classes = np.asarray(final.classes_) if tree.n_classes else None
        kernel = Kernel(
            serial=forest_serial,
            parallel=forest_parallel,
            parallel_rows=parallel_rows,
            args=tree.forest.args(),
            tail=(tree.mode, tree.divisor, tree.link, tree.n_classes),
            has_proba=tree.mode not in fin.MODES_WITHOUT_PROBA,
            direct=direct_forest(
                tree.forest,
                mode=tree.mode,
                divisor=tree.divisor,
                link=tree.link,
                n_classes=tree.n_classes,
            ),
        )
        return kernel, "classification" if classes is not None else "regression", classes
    if name in MLPS:
        return _mlp_kernel(model, final, float32)
    return _linear_kernel(model, final)


def _tree_model(
    model: Any, final: Any, column_of: np.ndarray, float32_values: bool
) -> tc.TreeModel:
    name = type(final).__name__
    classifier = name.endswith("Classifier")
    if getattr(final, "n_outputs_", 1) != 1:
        raise _unsupported(model, "multi-output trees are not supported")
    if name.startswith("DecisionTree"):
        return tc.convert_forest(final, [final.tree_], classifier=classifier)
    if name.startswith(("RandomForest", "ExtraTrees")):
        return tc.convert_forest(final, [e.tree_ for e in final.estimators_], classifier=classifier)
    if name.startswith("GradientBoosting"):
        init = final.init_
        if not (isinstance(init, str) or type(init).__name__.startswith("Dummy")):
            raise _unsupported(model, f"init={type(init).__name__} (only the default init)")
        if classifier and final.loss != "log_loss":
            raise _unsupported(model, f"loss={final.loss!r} (only 'log_loss')")
        return tc.convert_gradient_boosting(final, classifier=classifier)
    if classifier and final.loss != "log_loss":
        raise _unsupported(model, f"loss={final.loss!r} (only 'log_loss')")
    link = type(final._loss.link).__name__
    if not classifier and link not in ("IdentityLink", "LogLink"):
        raise _unsupported(model, f"loss link {link}")
    return tc.convert_hist_gradient_boosting(
        final, classifier=classifier, column_of=column_of, float32_inputs=float32_values
    )


def _linear_kernel(model: Any, final: Any) -> tuple[Kernel, str, np.ndarray | None]:
    name = type(final).__name__
    if name == "OneVsRestClassifier":
        return _ovr_kernel(model, final)
    coef = np.atleast_2d(np.asarray(final.coef_, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(final.intercept_, dtype=np.float64))
    if name in LINEAR_REGRESSORS:
        if coef.shape[0] != 1:
            raise _unsupported(model, "multi-output regression is not supported")
        return _linear(coef, intercept, fin.REGRESSION, 0), "regression", None
    classes = np.asarray(final.classes_)
    binary = coef.shape[0] == 1
    if name == "LogisticRegression":
        mode = fin.BINARY_DECISION if binary else fin.SOFTMAX_DECISION
    elif final.loss == "log_loss":
        mode = fin.BINARY_DECISION if binary else fin.OVR_NORMALIZED
    elif final.loss == "modified_huber":
        raise _unsupported(model, "SGDClassifier(loss='modified_huber')")
    else:
        mode = fin.DECISION_ONLY
    return _linear(coef, intercept, mode, len(classes)), "classification", classes


def _ovr_kernel(model: Any, final: Any) -> tuple[Kernel, str, np.ndarray | None]:
    members = final.estimators_
    for member in members:
        member_name = type(member).__name__
        if member_name not in LINEAR_CLASSIFIERS or np.asarray(member.coef_).shape[0] != 1:
            raise _unsupported(model, f"OneVsRestClassifier of {member_name}")
        if member_name == "SGDClassifier" and member.loss == "modified_huber":
            raise _unsupported(model, "SGDClassifier(loss='modified_huber')")
    if final.label_binarizer_.y_type_ not in ("binary", "multiclass"):
        raise _unsupported(model, "multilabel OneVsRestClassifier")
    coef = np.vstack([np.asarray(m.coef_, dtype=np.float64) for m in members])
    intercept = np.concatenate([np.atleast_1d(m.intercept_) for m in members]).astype(np.float64)
    mode = fin.OVR_WRAPPER if hasattr(final, "predict_proba") else fin.DECISION_ONLY
    classes = np.asarray(final.classes_)
    return _linear(coef, intercept, mode, len(classes)), "classification", classes


def _linear(coef: np.ndarray, intercept: np.ndarray, mode: int, n_classes: int) -> Kernel:
    return Kernel(
        serial=linear_predict,
        parallel=None,
        parallel_rows=0,
        args=(np.ascontiguousarray(coef), np.ascontiguousarray(intercept)),
        tail=(mode, n_classes),
        has_proba=mode not in fin.MODES_WITHOUT_PROBA,
        takes_affine=True,
        scratch=((np.float64, coef.shape[1]),),
        scratch_rows=True,
    )


def _mlp_kernel(model: Any, final: Any, float32: bool) -> tuple[Kernel, str, np.ndarray | None]:
    out = final.out_activation_
    classes = np.asarray(final.classes_) if type(final).__name__ == "MLPClassifier" else None
    if classes is None:
        if final.n_outputs_ != 1:
            raise _unsupported(model, "multi-output regression is not supported")
        mode, task = fin.REGRESSION, "regression"
    elif out == "softmax":
        mode, task = fin.SOFTMAX_PROBA, "classification"
    elif out == "logistic" and final.n_outputs_ == 1:
        mode, task = fin.MLP_BINARY, "classification"
    else:
        raise _unsupported(model, "multilabel MLPClassifier")
    dtype = np.result_type(np.float32 if float32 else np.float64, final.coefs_[0].dtype)
    weights, biases = pack_layers(
        [np.asarray(w, dtype=dtype) for w in final.coefs_],
        [np.asarray(b, dtype=dtype) for b in final.intercepts_],
    )
    d = weights[0].shape[0]
    kernel = Kernel(
        serial=mlp_predict,
        parallel=None,
        parallel_rows=0,
        args=(weights, biases),
        tail=(ACTIVATIONS[final.activation], mode, len(classes) if classes is not None else 0),
        has_proba=mode != fin.REGRESSION,
        takes_affine=True,
        scratch=((np.float64, d), (dtype, d), *((dtype, w.shape[1]) for w in weights)),
        scratch_rows=True,
        scratch_tuple_from=2,
    )
    return kernel, task, classes
