"""Which types a stored scikit-learn model may contain, and loading it under that policy.

scikit-learn models are persisted with skops, whose loader refuses to build any type it is
not told to trust. mlgate's trusted list is *computed per file*: skops'
``get_untrusted_types`` names every type the file would build beyond skops' own safe
defaults, and mlgate accepts a name only when it belongs to

* ``sklearn.*`` — estimators, transformers, pipelines and their fitted internals
  (``sklearn.tree._tree.Tree``, ``…hist_gradient_boosting.predictor.TreePredictor`` …);
* ``numpy.*`` — dtypes, arrays, scalars, random generators and ufuncs, *except* the file
  and process helpers listed in :data:`DENIED_NUMPY` (``numpy.load``, ``numpy.memmap`` …);
* ``scipy.sparse.*`` (sparse matrices) and ``scipy.special.*`` (ufuncs used by
  ``FunctionTransformer``);
* these basics: :data:`ALLOWED_EXACT` (``builtins.dict``, ``builtins.list`` …,
  ``collections.OrderedDict``, ``collections.defaultdict``).

Anything else — a class from another library, a ``__main__`` class, ``builtins.eval``,
``os.system`` — raises :class:`registry.errors.UntrustedTypes` naming the types, both when a
model is registered and when it is loaded.
"""

from __future__ import annotations

from typing import Any

from registry.errors import UnsupportedArtifact, UntrustedTypes

ALLOWED_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.", "scipy.special.")
ALLOWED_EXACT = frozenset(
    {
        "builtins.bool",
        "builtins.bytes",
        "builtins.complex",
        "builtins.dict",
        "builtins.float",
        "builtins.frozenset",
        "builtins.int",
        "builtins.list",
        "builtins.NoneType",
        "builtins.set",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        "collections.OrderedDict",
        "collections.defaultdict",
    }
)
DENIED_NUMPY = (
    "numpy.load",
    "numpy.save",
    "numpy.fromfile",
    "numpy.memmap",
    "numpy.lib.npyio",
    "numpy.lib.format",
    "numpy.ctypeslib",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.testing",
)


def is_trusted(type_name: str) -> bool:
    """Whether mlgate trusts a fully qualified type name found in a skops file.

    >>> is_trusted("sklearn.tree._tree.Tree"), is_trusted("numpy.load"), is_trusted("os.system")
    (True, False, False)
    """
    if type_name in ALLOWED_EXACT:
        return True
    if type_name.startswith("numpy.") and type_name.startswith(DENIED_NUMPY):
        return False
    return type_name.startswith(ALLOWED_PREFIXES)


def split_types(data: bytes, *, what: str) -> tuple[list[str], list[str]]:
    """(trusted, refused) among the types in the skops bytes beyond skops' defaults."""
    import skops.io as sio

    try:
        names = sio.get_untrusted_types(data=data)
    except Exception as exc:  # noqa: BLE001 - zipfile/json/skops errors on a bad file
        raise UnsupportedArtifact(f"{what}: not a readable skops file: {exc}") from exc
    return [n for n in names if is_trusted(n)], [n for n in names if not is_trusted(n)]


def check_trusted(data: bytes, *, what: str) -> list[str]:
    """The extra types to pass to skops; raises ``UntrustedTypes`` if any is refused."""
    trusted, refused = split_types(data, what=what)
    if refused:
        raise UntrustedTypes(
            f"{what}: holds types outside mlgate's trusted list "
            f"(sklearn.*, numpy.*, scipy.sparse.*, scipy.special.*, basic builtins): "
            f"{', '.join(refused)}"
        )
    return trusted


def load_skops(data: bytes, *, what: str, trust_all: bool = False) -> Any:
    """Build the object in skops bytes; only trusted types unless ``trust_all``."""
    import skops.io as sio

    if trust_all:
        trusted = [n for group in split_types(data, what=what) for n in group]
    else:
        trusted = check_trusted(data, what=what)
    try:
        return sio.loads(data, trusted=trusted)
    except Exception as exc:  # noqa: BLE001 - skops raises many kinds on a bad file
        raise UnsupportedArtifact(f"{what}: not a readable skops file: {exc}") from exc


def dump_skops(estimator: Any, *, what: str) -> bytes:
    """skops bytes of a fitted estimator whose types are all trusted."""
    import skops.io as sio

    data: bytes = sio.dumps(estimator)
    check_trusted(data, what=what)
    return data
