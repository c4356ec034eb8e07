"""Which types a stored scikit-learn model may contain, and loading it under that policy.

scikit-learn models are persisted with skops, whose loader refuses to build any type it is
not told to trust. skops itself trusts, without being told, its own audited lists: the
public scikit-learn estimators, numpy and scipy ufuncs, numpy dtypes and a few containers.
``get_untrusted_types`` names every *other* type a file would build, and mlgate accepts such
a name only when it is on :data:`ALLOWED_TYPES`, an **allowlist of exact names**:

* basic builtins and containers (``builtins.dict``, ``collections.OrderedDict`` …);
* the fitted internals scikit-learn stores inside its own estimators (``Tree``,
  ``TreePredictor``, the MLP optimizers, the calibrators, the neighbours' trees and distance
  metrics, ``Bunch``), numpy's dtype, scalar types and random generators, and scipy's sparse
  matrix and array classes;
* three plain functions that scikit-learn itself stores in fitted models
  (``check_array`` in histogram boosting's categorical preprocessor, ``f_classif`` and
  ``f_regression`` as ``SelectKBest``'s defaults), and ``functools.partial`` around them.

There are no module prefixes: ``sklearn.datasets.dump_svmlight_file`` (writes a file when a
``FunctionTransformer`` calls it), ``numpy.load``, ``numpy.genfromtxt``, ``builtins.eval``,
``operator.attrgetter`` or a class of another library are all refused, at registration and at
every load, with :class:`registry.errors.UntrustedTypes` naming them — before any object of
the file is built, so a refused file has no side effect. A user who has reviewed such a type
(their own transformer class, a function of theirs) trusts it explicitly by name
(``Registry.register(..., trusted_types=[...])``, ``mlgate models register --trust-type``);
the names are recorded in the version's manifest and trusted for that version only.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from registry.errors import UnsupportedArtifact, UntrustedTypes

if TYPE_CHECKING:
    from collections.abc import Iterable

BASIC_TYPES = (
    "builtins.bool", "builtins.bytes", "builtins.complex", "builtins.dict", "builtins.float",
    "builtins.frozenset", "builtins.int", "builtins.list", "builtins.NoneType", "builtins.set",
    "builtins.slice", "builtins.str", "builtins.tuple", "collections.OrderedDict",
    "collections.defaultdict",
)  # fmt: skip
SKLEARN_INTERNALS = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.utils._bunch.Bunch",
    "sklearn.dummy.DummyClassifier",
    "sklearn.dummy.DummyRegressor",
)
# plain functions scikit-learn stores in fitted estimators; pure computations on arrays
SKLEARN_FUNCTIONS = (
    "functools.partial",  # its function and arguments are checked like any other type
    "sklearn.utils.validation.check_array",
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.feature_selection._univariate_selection.f_regression",
)
NUMPY_TYPES = (
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.random._generator.Generator",
    "numpy.random.mtrand.RandomState",
    "numpy.random.bit_generator.SeedSequence",
    "numpy.random._pcg64.PCG64",
    "numpy.random._mt19937.MT19937",
)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@cache
def allowed_types() -> frozenset[str]:
    """Every name mlgate trusts beyond skops' defaults (computed once: the distance metric
    and sparse class names depend on the installed scikit-learn and scipy).

    >>> "sklearn.tree._tree.Tree" in allowed_types(), "numpy.load" in allowed_types()
    (True, False)
    """
    import numpy as np
    import scipy.sparse
    from sklearn.metrics import DistanceMetric

    scalars = {f"numpy.{t.__name__}" for t in set(np.sctypeDict.values())}
    metrics = {_qualified(cls) for cls in {DistanceMetric, *_subclasses(DistanceMetric)}}
    sparse = {
        _qualified(obj)
        for name in dir(scipy.sparse)
        if isinstance(obj := getattr(scipy.sparse, name), type)
        and name.endswith(("_matrix", "_array"))
    }
    return frozenset(
        {
            *BASIC_TYPES,
            *SKLEARN_INTERNALS,
            *SKLEARN_FUNCTIONS,
            *NUMPY_TYPES,
            *scalars,
            *metrics,
            *sparse,
        }
    )


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    stack = [cls]
    while stack:
        sub: type
        for sub in stack.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                stack.append(sub)
    return found


def is_trusted(type_name: str, extra: Iterable[str] = ()) -> bool:
    """Whether mlgate trusts a fully qualified type name found in a skops file (``extra``:
    names the user trusted explicitly).

    >>> is_trusted("sklearn.tree._tree.Tree"), is_trusted("numpy.load"), is_trusted("os.system")
    (True, False, False)
    >>> is_trusted("sklearn.datasets.dump_svmlight_file")
    False
    >>> is_trusted("mylib.Doubler", extra=["mylib.Doubler"])
    True
    """
    return type_name in allowed_types() or type_name in extra


def split_types(
    data: bytes, *, what: str, extra: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """(trusted, refused) among the types in the skops bytes beyond skops' defaults."""
    import skops.io as sio

    try:
        names = sio.get_untrusted_types(data=data)
    except Exception as exc:  # noqa: BLE001 - zipfile/json/skops errors on a bad file
        raise UnsupportedArtifact(f"{what}: not a readable skops file: {exc}") from exc
    extra = frozenset(extra)
    trusted = [n for n in names if is_trusted(n, extra)]
    return trusted, [n for n in names if n not in trusted]


def check_trusted(data: bytes, *, what: str, extra: Iterable[str] = ()) -> list[str]:
    """The extra types to pass to skops; raises ``UntrustedTypes`` if any is refused."""
    trusted, refused = split_types(data, what=what, extra=extra)
    if refused:
        raise UntrustedTypes(
            f"{what}: holds types outside mlgate's trusted list (scikit-learn's estimators "
            f"and fitted internals, numpy/scipy ufuncs, dtypes and arrays, basic builtins): "
            f"{', '.join(refused)}; if you have reviewed them, trust them by name "
            f"(--trust-type NAME, trusted_types=[...])"
        )
    return trusted


def load_skops(
    data: bytes, *, what: str, trust_all: bool = False, extra: Iterable[str] = ()
) -> Any:
    """Build the object in skops bytes; only trusted types (plus ``extra``) unless
    ``trust_all``."""
    import skops.io as sio

    if trust_all:
        trusted = [n for group in split_types(data, what=what) for n in group]
    else:
        trusted = check_trusted(data, what=what, extra=extra)
    try:
        return sio.loads(data, trusted=trusted)
    except Exception as exc:  # noqa: BLE001 - skops raises many kinds on a bad file
        raise UnsupportedArtifact(f"{what}: not a readable skops file: {exc}") from exc


def dump_skops(estimator: Any, *, what: str, extra: Iterable[str] = ()) -> bytes:
    """skops bytes of a fitted estimator whose types are all trusted."""
    import skops.io as sio

    data: bytes = sio.dumps(estimator)
    check_trusted(data, what=what, extra=extra)
    return data
