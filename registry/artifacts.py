"""Turn what a user registers (an estimator, an ONNX model, or a file) into stored bytes.

Accepted: fitted scikit-learn estimators and pipelines (stored as skops), ``onnx.ModelProto``
objects, and files ``.skops`` / ``.onnx`` — plus ``.pkl`` / ``.pickle`` / ``.joblib`` only
with ``trust_pickle=True``, which are unpickled once here and stored as skops from then on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry import trust
from registry.errors import PickleRefused, UnsupportedArtifact

if TYPE_CHECKING:
    from collections.abc import Sequence

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
MODEL_SUFFIXES = (".skops", ".onnx", *PICKLE_SUFFIXES)
ARTIFACT_NAMES = {"sklearn": "model.skops", "onnx": "model.onnx"}


@dataclass(frozen=True)
class Source:
    """A model as offered: exactly one of ``estimator`` / ``onnx_model`` is set."""

    what: str  # how to name it in messages
    estimator: Any = None
    onnx_model: Any = None
    raw: bytes | None = None  # the file's bytes when it can be stored unchanged


def is_onnx_model(obj: object) -> bool:
    return type(obj).__name__ == "ModelProto" and hasattr(obj, "SerializeToString")


def _check_estimator(obj: object, what: str) -> None:
    if not (hasattr(obj, "get_params") and hasattr(obj, "predict")):
        raise UnsupportedArtifact(
            f"{what}: not a model: expected a fitted scikit-learn estimator or pipeline, "
            f"an onnx.ModelProto or a path, got {type(obj).__name__}"
        )
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(obj)
    except NotFittedError as exc:
        raise UnsupportedArtifact(f"{what}: the estimator is not fitted; call fit() first") from exc
    except TypeError as exc:
        raise UnsupportedArtifact(f"{what}: not a scikit-learn estimator: {exc}") from exc


def _parse_onnx(data: bytes, what: str) -> Any:
    import onnx

    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise UnsupportedArtifact(f"{what}: not an ONNX model: {exc}") from exc
    if not model.graph.input or not model.graph.output:
        raise UnsupportedArtifact(f"{what}: not an ONNX model: the graph has no inputs/outputs")
    return model


def _from_path(path: Path, *, trust_pickle: bool, trusted_types: Sequence[str]) -> Source:
    what = str(path)
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise UnsupportedArtifact(
            f"{what}: not a model file: expected .skops or .onnx "
            f"(or .pkl/.joblib with --trust-pickle), got {suffix or 'no extension'!r}"
        )
    if suffix in PICKLE_SUFFIXES and not trust_pickle:
        raise PickleRefused(
            f"{what}: refusing to unpickle a {suffix} file (unpickling runs arbitrary code); "
            "pass --trust-pickle (trust_pickle=True) only if you trust where it came from"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise UnsupportedArtifact(f"{what}: no such model file") from exc
    except OSError as exc:
        raise UnsupportedArtifact(f"{what}: cannot read the model file: {exc}") from exc
    if suffix == ".onnx":
        return Source(what=what, onnx_model=_parse_onnx(data, what), raw=data)
    if suffix == ".skops":
        estimator = trust.load_skops(data, what=what, extra=trusted_types)
        _check_estimator(estimator, what)
        return Source(what=what, estimator=estimator, raw=data)
    import joblib

    try:
        estimator = joblib.load(path)
    except Exception as exc:  # noqa: BLE001 - unpickling fails in countless ways
        raise UnsupportedArtifact(f"{what}: not a readable pickle/joblib file: {exc}") from exc
    _check_estimator(estimator, what)
    return Source(what=what, estimator=estimator)


def load_source(
    model_or_path: object, *, trust_pickle: bool = False, trusted_types: Sequence[str] = ()
) -> Source:
    """Read what the user offered, refusing pickles unless trusted."""
    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path).expanduser()
        return _from_path(path, trust_pickle=trust_pickle, trusted_types=trusted_types)
    if is_onnx_model(model_or_path):
        return Source(what="onnx model", onnx_model=model_or_path)
    what = f"{type(model_or_path).__name__} object"
    _check_estimator(model_or_path, what)
    return Source(what=what, estimator=model_or_path)


def choose_flavor(source: Source, flavor: str | None) -> str:
    if flavor is None:
        return "onnx" if source.onnx_model is not None else "sklearn"
    if flavor not in ARTIFACT_NAMES:
        raise UnsupportedArtifact(f"flavor {flavor!r}: expected 'sklearn' or 'onnx'")
    if flavor == "sklearn" and source.estimator is None:
        raise UnsupportedArtifact(f"{source.what}: an ONNX model cannot be stored as 'sklearn'")
    return flavor


def encode(
    source: Source, *, flavor: str, feature_names: list[str], trusted_types: Sequence[str] = ()
) -> bytes:
    """The artifact bytes to store for ``flavor``."""
    if flavor == "onnx":
        if source.onnx_model is not None:
            return source.raw if source.raw is not None else source.onnx_model.SerializeToString()
        from registry.onnx_export import export_onnx  # owned by the runtimes engineer

        data: bytes = export_onnx(
            source.estimator, n_features=len(feature_names), feature_names=feature_names
        )
        return data
    if source.raw is not None:
        return source.raw  # a .skops file already checked against the trusted list
    return trust.dump_skops(source.estimator, what=source.what, extra=trusted_types)
