"""The model registry: versioned models, their routes and an audit trail on a Store.

Layout (DESIGN.md "Registry")::

    models/<name>/versions/<v>/.claim            create-only: who owns version v
    models/<name>/versions/<v>/model.skops|model.onnx
    models/<name>/versions/<v>/reference.parquet
    models/<name>/versions/<v>/reference_predictions.parquet   the model's outputs on it
    models/<name>/versions/<v>/manifest.json     written last, create-only: the commit point
    models/<name>/route.json                     compare-and-swap on ``generation``
    models/<name>/events.jsonl                   append-only audit

A version number is taken by creating its ``.claim`` (exclusive create on both backends), so
two writers never share one. The artifact (and reference, and the model's predictions on
the reference) are stored, the artifact read back and hashed, and only then is
``manifest.json`` created: a writer that dies before that leaves a claimed number without a
manifest, which no reader ever shows.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from registry import artifacts, lineage, routes, schema, trust
from registry import predictions as refpreds
from registry import reference as refdata
from registry.errors import ArtifactCorrupt, ModelNotFound, RegistryError, VersionNotFound
from registry.model import Event, Lineage, ModelVersion, OutputSchema, Route
from registry.names import check_name
from registry.store import Store, open_store

if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable, Sequence

    import polars as pl
    import pyarrow as pa

log = logging.getLogger(__name__)

ALIASES = ("champion", "canary", "latest")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Registry:
    """Versioned models and routes on a local directory or an S3 prefix.

    >>> import tempfile
    >>> Registry(tempfile.mkdtemp()).list()
    []
    """

    def __init__(
        self,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        """``before_commit``: called after a new version's files are stored and checked and
        before its manifest is written (the commit point); lets a caller observe, or a test
        kill, a writer at that moment."""
        self._store = open_store(url, storage_options=storage_options)
        self._before_commit = before_commit
        self.url: str = self._store.url
        self.storage_options = storage_options
        self._code_version: str | None = None

    @classmethod
    def from_env(cls, *, storage_options: dict[str, Any] | None = None) -> Registry:
        """``MLGATE_REGISTRY``, else ``$MLGATE_HOME/registry``, else ``./.mlgate/registry``."""
        url = os.environ.get("MLGATE_REGISTRY")
        if not url:
            url = str(Path(os.environ.get("MLGATE_HOME") or "./.mlgate") / "registry")
        return cls(url, storage_options=storage_options)

    @property
    def store(self) -> Store:
        """The storage backend (for other control-plane files such as gateway reports)."""
        return self._store

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"

    # -- keys -------------------------------------------------------------------------------
    @staticmethod
    def _key(name: str, *parts: object) -> str:
        return "/".join(["models", name, *(str(p) for p in parts)])

    def _where(self, key: str) -> str:
        return f"{self.url}/{key}"

    # -- writing ----------------------------------------------------------------------------
    def register(
        self,
        name: str,
        model_or_path: object,
        *,
        reference: object = None,
        tags: dict[str, str] | None = None,
        flavor: str | None = None,
        trust_pickle: bool = False,
        trusted_types: Sequence[str] = (),
        metrics: dict[str, float] | None = None,
        parent_version: int | None = None,
        trigger: str = "manual",
        promote: bool = False,
        recipe: str | None = None,
        lineage_fields: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Store a new version of ``name``; returns its committed manifest.

        The first version of a name becomes its champion; ``promote=True`` makes this one
        champion at once (the previous champion is remembered in the route).
        ``trusted_types``: type names beyond mlgate's allowlist (``registry.trust``) that the
        user has reviewed; recorded in the manifest and trusted for this version only.
        ``recipe``: how the trainer retrains this model (``package.module:function``, called
        as ``function(frame, target) -> fitted estimator``); ``lineage_fields``: lineage
        fields set over the ones computed here (the trainer's ``data_fingerprint``, ``rows``,
        ``time_range``, ``run_id``, ``gate``).
        """
        check_name(name)
        manifest, data, ref_bytes, pred_bytes = self._prepare(
            name, model_or_path, reference=reference, flavor=flavor, trust_pickle=trust_pickle,
            lineage_info={"metrics": metrics, "parent_version": parent_version, "trigger": trigger,
                          "recipe": recipe, "extra": lineage_fields or {}},
            tags=tags, trusted_types=sorted(set(trusted_types)),
        )  # fmt: skip
        version = self._commit(manifest, data, ref_bytes, pred_bytes)
        return self._after_commit(version, promote=promote)

    def _prepare(
        self,
        name: str,
        model_or_path: object,
        *,
        reference: object,
        flavor: str | None,
        trust_pickle: bool,
        lineage_info: dict[str, Any],
        tags: dict[str, str] | None,
        trusted_types: builtins.list[str],
    ) -> tuple[ModelVersion, bytes, bytes | None, bytes | None]:
        """Everything a version needs before storage is touched: (manifest, artifact,
        reference, the model's predictions on the reference)."""
        source = artifacts.load_source(
            model_or_path, trust_pickle=trust_pickle, trusted_types=trusted_types
        )
        chosen = artifacts.choose_flavor(source, flavor)
        est, onnx_model = source.estimator, source.onnx_model
        metrics = lineage_info["metrics"]
        frame = None
        if reference is not None:
            try:
                hint = schema.feature_names(estimator=est, onnx_model=onnx_model)
            except RegistryError:
                hint = None
            frame = refdata.to_frame(reference, feature_names=hint)
        names = schema.feature_names(estimator=est, onnx_model=onnx_model, reference=frame)
        if frame is not None:
            frame = refdata.align(frame, names)
        data = artifacts.encode(
            source, flavor=chosen, feature_names=names, trusted_types=trusted_types
        )
        ref_bytes = refdata.to_parquet(frame) if frame is not None else None
        output = schema.output_schema(estimator=est, onnx_model=onnx_model)
        pred_bytes = None
        if frame is not None and chosen == "sklearn" and est is not None:
            pred_bytes = self._reference_predictions(est, frame, names, output, name=name)
        manifest = ModelVersion(
            name=name,
            version=0,
            flavor=chosen,  # type: ignore[arg-type]
            artifact=artifacts.ARTIFACT_NAMES[chosen],
            sha256=_sha256(data),
            input_schema=schema.input_schema(names, onnx_model=onnx_model, reference=frame),
            output_schema=output,
            lineage=Lineage(
                data_fingerprint=refdata.fingerprint(frame) if frame is not None else None,
                rows=frame.height if frame is not None else None,
                params=lineage.estimator_params(est),
                metrics={str(k): float(v) for k, v in (metrics or {}).items()},
                code_version=self._code(),
                parent_version=lineage_info["parent_version"],
                trigger=lineage_info["trigger"],
                recipe=lineage_info.get("recipe"),
            ),
            created_at="",
            tags={str(k): str(v) for k, v in (tags or {}).items()},
            trusted_types=trusted_types,
            reference="reference.parquet" if ref_bytes is not None else None,
            reference_sha256=_sha256(ref_bytes) if ref_bytes is not None else None,
            reference_predictions=refpreds.FILE_NAME if pred_bytes is not None else None,
            reference_predictions_sha256=_sha256(pred_bytes) if pred_bytes is not None else None,
        )
        extra = lineage_info.get("extra") or {}
        if extra:
            try:
                merged = msgspec.convert(
                    {**msgspec.to_builtins(manifest.lineage), **extra}, Lineage
                )
            except msgspec.ValidationError as exc:
                raise RegistryError(f"model {name!r}: lineage: {exc}") from exc
            manifest = msgspec.structs.replace(manifest, lineage=merged)
        return manifest, data, ref_bytes, pred_bytes

    @staticmethod
    def _reference_predictions(
        est: object,
        frame: pl.DataFrame,
        names: builtins.list[str],
        output: OutputSchema,
        *,
        name: str,
    ) -> bytes | None:
        """The estimator's outputs on the reference as Parquet; None (and a warning) when it
        cannot score it: the monitor then scores the reference itself, or reports why not."""
        try:
            return refpreds.to_parquet(refpreds.score(est, frame, names, output))
        except Exception as exc:  # noqa: BLE001 - a model failing on its sample is not fatal
            log.warning(
                "registry: model %r cannot score its reference data (%s: %s);"
                " reference predictions are not stored",
                name, type(exc).__name__, exc,
            )  # fmt: skip
            return None

    def _code(self) -> str:
        if self._code_version is None:
            self._code_version = lineage.code_version()
        return self._code_version

    def _allocate(self, name: str) -> int:
        taken = [int(c) for c in self._store.children(self._key(name, "versions")) if c.isdigit()]
        version = max(taken, default=0) + 1
        claim = json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "ts": utc_now()})
        while not self._store.create(
            self._key(name, "versions", version, ".claim"), claim.encode()
        ):
            version += 1
        return version

    def _commit(
        self,
        manifest: ModelVersion,
        data: bytes,
        ref_bytes: bytes | None,
        pred_bytes: bytes | None = None,
    ) -> ModelVersion:
        name = manifest.name
        version = self._allocate(name)
        artifact_key = self._key(name, "versions", version, manifest.artifact)
        self._store.write(artifact_key, data)
        if ref_bytes is not None:
            self._store.write(self._key(name, "versions", version, "reference.parquet"), ref_bytes)
        if pred_bytes is not None and manifest.reference_predictions is not None:
            self._store.write(
                self._key(name, "versions", version, manifest.reference_predictions), pred_bytes
            )
        stored = _sha256(self._store.read(artifact_key))
        if stored != manifest.sha256:
            raise ArtifactCorrupt(
                f"{self._where(artifact_key)}: read back sha256 {stored}, wrote {manifest.sha256}",
                file=self._where(artifact_key), expected=manifest.sha256, actual=stored,
            )  # fmt: skip
        if self._before_commit is not None:
            self._before_commit()
        committed = msgspec.structs.replace(manifest, version=version, created_at=utc_now())
        body = msgspec.json.format(msgspec.json.encode(committed), indent=2)
        key = self._key(name, "versions", version, "manifest.json")
        # A retried PUT whose first answer was lost finds its own manifest: that is success.
        if not self._store.create(key, body) and self._store.read(key) != body:
            raise RegistryError(f"{self._where(key)}: exists although this writer claimed it")
        return committed

    def _after_commit(self, mv: ModelVersion, *, promote: bool) -> ModelVersion:
        v = mv.version
        self._append_event(
            Event(ts=utc_now(), model=mv.name, kind="register", version=v,
                  detail={"flavor": mv.flavor, "sha256": mv.sha256, "tags": mv.tags,
                          "trigger": mv.lineage.trigger})
        )  # fmt: skip
        if promote:
            self.update_route(mv.name, lambda r: routes.promoted(r, v), kind="promote",
                              detail={"version": v, "reason": "register --promote"})  # fmt: skip
        else:
            self.update_route(
                mv.name,
                lambda r: r if r.champion is not None else msgspec.structs.replace(r, champion=v),
                kind="promote", detail={"version": v, "reason": "first version"},
            )  # fmt: skip
        return mv

    def _append_event(self, event: Event) -> None:
        self._store.append(
            self._key(event.model, "events.jsonl"), msgspec.json.encode(event) + b"\n"
        )

    def record_event(
        self,
        name: str,
        kind: str,
        *,
        version: int | None = None,
        detail: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> Event:
        """Append one event to ``name``'s audit trail (``events.jsonl``) and return it.

        The parts that are not the registry (the monitor's alerts, the trainer's runs and
        rollout decisions) write their events through this, so every part reads one trail.
        """
        check_name(name)
        event = Event(ts=utc_now(), model=name, kind=kind, version=version,
                      detail=detail or {}, actor=actor)  # fmt: skip
        self._append_event(event)
        return event

    # -- reading ----------------------------------------------------------------------------
    def list(self) -> list[str]:
        """Names of the registered models, sorted."""
        out = []
        for name in self._store.children("models"):
            if self._store.exists(self._key(name, "route.json")) or self._committed(name):
                out.append(name)
        return out

    def _committed(self, name: str) -> builtins.list[int]:
        keys = self._store.keys(self._key(name, "versions"))
        found = []
        for key in keys:
            head, _, tail = key.partition("/")
            if tail == "manifest.json" and head.isdigit():
                found.append(int(head))
        return sorted(found)

    def _manifest(self, name: str, version: int) -> ModelVersion | None:
        key = self._key(name, "versions", version, "manifest.json")
        try:
            data = self._store.read(key)
        except FileNotFoundError:
            return None
        return self._decode_manifest(key, data)

    def _decode_manifest(self, key: str, data: bytes) -> ModelVersion:
        try:
            return msgspec.json.decode(data, type=ModelVersion)
        except msgspec.DecodeError as exc:
            raise RegistryError(f"{self._where(key)}: not a valid manifest: {exc}") from exc

    def versions(self, name: str) -> builtins.list[ModelVersion]:
        """Every committed version of ``name``, ascending."""
        check_name(name)
        keys = [self._key(name, "versions", v, "manifest.json") for v in self._committed(name)]
        raw = self._store.read_many(keys)
        found = [self._decode_manifest(k, raw[k]) for k in keys if k in raw]
        if not found and not self._store.exists(self._key(name, "route.json")):
            raise self._not_found(name)
        return found

    def _not_found(self, name: str) -> ModelNotFound:
        return ModelNotFound(f"model {name!r} is not registered in {self.url}")

    def get(self, name: str, version_or_alias: int | str = "champion") -> ModelVersion:
        """A version by number (``3`` or ``"3"``) or alias (champion, canary, latest)."""
        check_name(name)
        version = self._resolve(name, version_or_alias)
        manifest = self._manifest(name, version)
        if manifest is None:
            if not self._committed(name) and not self._store.exists(self._key(name, "route.json")):
                raise self._not_found(name)
            raise VersionNotFound(f"model {name!r} has no version {version}")
        return manifest

    def _resolve(self, name: str, version_or_alias: int | str) -> int:
        value = version_or_alias
        if isinstance(value, int) and not isinstance(value, bool):
            if value >= 1:
                return value
        elif isinstance(value, str) and value.isdigit() and int(value) >= 1:
            return int(value)
        elif value == "latest":
            committed = self._committed(name)
            if not committed:
                raise self._not_found(name)
            return int(committed[-1])
        elif value in ("champion", "canary"):
            route = self.route(name)
            picked = route.champion if value == "champion" else (
                route.canary.version if route.canary else None)  # fmt: skip
            if picked is None:
                if route.generation == 0 and not self._committed(name):
                    raise self._not_found(name)
                raise VersionNotFound(f"model {name!r} has no {value}")
            return picked
        raise VersionNotFound(
            f"model {name!r}: version must be a number >= 1 or one of {', '.join(ALIASES)}, "
            f"got {value!r}"
        )

    def artifact_bytes(self, mv: ModelVersion) -> bytes:
        """The artifact's bytes, verified against the manifest's sha256."""
        return self._verified(mv, mv.artifact, mv.sha256)

    def _verified(self, mv: ModelVersion, file: str, expected: str) -> bytes:
        check_name(mv.name)
        key = self._key(mv.name, "versions", mv.version, file)
        where = self._where(key)
        try:
            data = self._store.read(key)
        except FileNotFoundError as exc:
            raise ArtifactCorrupt(f"{where}: missing (manifest expects sha256 {expected})",
                                  file=where, expected=expected, actual=None) from exc  # fmt: skip
        actual = _sha256(data)
        if actual != expected:
            raise ArtifactCorrupt(
                f"{where}: sha256 mismatch: expected {expected}, got {actual}",
                file=where, expected=expected, actual=actual,
            )  # fmt: skip
        return data

    def load_model(self, mv: ModelVersion, *, trust_pickle: bool = False) -> object:
        """sklearn flavor: the fitted estimator (trusted types only, unless ``trust_pickle``
        widens trust to every type in the file; the manifest's ``trusted_types`` are trusted
        too); onnx flavor: the model bytes."""
        data = self.artifact_bytes(mv)
        if mv.flavor == "onnx":
            return data
        what = f"{mv.name} v{mv.version} {mv.artifact}"
        return trust.load_skops(data, what=what, trust_all=trust_pickle, extra=mv.trusted_types)

    def load_reference(self, mv: ModelVersion) -> pl.DataFrame | None:
        """The stored reference sample (verified), or None when the version has none."""
        if mv.reference is None:
            return None
        import polars as pl

        data = self._verified(mv, mv.reference, mv.reference_sha256 or "")
        return pl.read_parquet(io.BytesIO(data))

    def load_reference_arrow(self, mv: ModelVersion) -> pa.Table | None:
        """``load_reference`` as a pyarrow Table (verified), or None: memory in Arrow's pool,
        which a long-running reader (the monitor) can hand back, unlike polars' allocator."""
        if mv.reference is None:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = self._verified(mv, mv.reference, mv.reference_sha256 or "")
        return pq.ParquetFile(pa.BufferReader(data)).read()  # read_table would import pandas

    def load_reference_predictions(self, mv: ModelVersion) -> pl.DataFrame | None:
        """The model's outputs on its reference sample, stored at registration (verified):
        the log's ``prediction`` and ``proba_<class>`` columns, one row per reference row.
        None for versions stored without them (registered before they existed, ONNX-flavored,
        or a model that could not score its reference)."""
        if mv.reference_predictions is None:
            return None
        data = self._verified(mv, mv.reference_predictions, mv.reference_predictions_sha256 or "")
        return refpreds.from_parquet(data)

    def load_reference_predictions_arrow(self, mv: ModelVersion) -> pa.Table | None:
        """``load_reference_predictions`` as a pyarrow Table (verified), or None (the
        monitor's reader: no polars import in its process)."""
        if mv.reference_predictions is None:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = self._verified(mv, mv.reference_predictions, mv.reference_predictions_sha256 or "")
        return pq.ParquetFile(pa.BufferReader(data)).read()  # read_table would import pandas

    # -- routes and events ------------------------------------------------------------------
    def route(self, name: str) -> Route:
        """The current route; ``Route()`` (generation 0) when there is none yet."""
        check_name(name)
        key = self._key(name, "route.json")
        found = self._store.read_tagged(key)
        return routes.decode(found[0], where=self._where(key)) if found else Route()

    def route_stamp(self, name: str) -> str | None:
        """A cheap token that changes whenever ``route.json`` changes; None when absent."""
        check_name(name)
        return self._store.stamp(self._key(name, "route.json"))

    def update_route(
        self,
        name: str,
        change: Callable[[Route], Route],
        *,
        kind: str,
        detail: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> Route:
        """Compare-and-swap ``route.json``: ``change`` is re-applied to the latest route until
        the write wins (``RouteConflict`` after many losses); appends an event."""
        check_name(name)
        key = self._key(name, "route.json")

        def has_version(version: int) -> bool:
            return self._store.exists(self._key(name, "versions", version, "manifest.json"))

        def finish(old: Route, new: Route) -> Route:
            if old.generation == 0 and not self._committed(name):
                raise self._not_found(name)
            routes.check_route(new, name=name, previous=old, has_version=has_version)
            return msgspec.structs.replace(new, generation=old.generation + 1, updated_at=utc_now())

        old, new = routes.compare_and_swap(
            self._store, key, change, finish=finish, where=self._where(key)
        )
        if new is not old:
            info = dict(detail or {})
            version = info.get("version")
            self._append_event(
                Event(ts=utc_now(), model=name, kind=kind, generation=new.generation,
                      version=version if isinstance(version, int) else None,
                      detail=info, actor=actor)
            )  # fmt: skip
        return new

    def events(self, name: str) -> builtins.list[Event]:
        """The audit trail of ``name``, oldest first."""
        check_name(name)
        try:
            data = self._store.read(self._key(name, "events.jsonl"))
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")[:-1]  # a trailing partial line is still being written
        return [msgspec.json.decode(line, type=Event) for line in lines if line.strip()]
