"""Gateway settings: limits, batching, hot-loading, log writer and security, with sane defaults.

Read from the ``[gateway]`` table of ``mlgate.toml`` (``GatewaySettings.from_mapping``); the
tokens also come from ``MLGATE_ADMIN_TOKEN`` / ``MLGATE_PREDICT_TOKEN``.
"""

from __future__ import annotations

import os
import resource
from typing import TYPE_CHECKING, Any

import msgspec

from registry.logschema import SEGMENT_CODECS

if TYPE_CHECKING:
    from gateway.runtimes.numba.saved import SavedRuntimes


class SettingsError(ValueError):
    """A gateway setting has a value we cannot use."""


class GatewaySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the gateway can be tuned by. Units are in the names."""

    # -- limits --
    max_body_bytes: int = 32 * 1024 * 1024  # request body, also after decompression; past it: 413
    max_request_rows: int = 65_536  # rows in one request; past it: 413
    max_feedback_labels: int = 1_000_000  # labels in one feedback request; past it: 400
    # answered request ids remembered per model (and worker) to count a feedback request's
    # labels as matched or unmatched; older ones count as unmatched (about 100 B each)
    feedback_match_ids: int = 200_000
    # bodies this large (or compressed ones this large) are decoded on a thread, so that a
    # 30 MiB request (about 0.3 s of JSON) does not stall every other request on the loop
    decode_off_loop_bytes: int = 1024 * 1024
    # feedback bodies this large (after decompression) are parsed, matched and written as a
    # log segment by a helper process of the worker (started on first use), so that a
    # million labels do not take the interpreter from predictions; 0: never
    feedback_process_bytes: int = 4 * 1024 * 1024
    # -- connections --
    # A client has this long to send a request's line and headers, counted from the moment
    # the connection opens or, on a kept-alive connection, from the previous answer (so it is
    # also the idle timeout: granian keeps one timer for both); past it the connection is
    # closed without an answer.
    http_header_timeout_s: float = 10.0
    # Keep connections open between requests (HTTP/1.1 keep-alive); false: one request each.
    http_keep_alive: bool = True
    # Also speak HTTP/2 (prior knowledge, h2c) on the HTTP port. Off by default: to tell the
    # two apart the server waits for a connection's first bytes with no timeout at all, so a
    # connection that sends nothing would hold its place for ever. On: an HTTP/2 connection
    # silent for http_header_timeout_s is pinged, and closed if the ping is not answered
    # within as long again (HTTP/2 has no idle timeout here: a client that answers pings
    # stays, counted against max_connections). gRPC has its own port (grpc_port).
    http2: bool = False
    # Largest request line plus headers, in bytes (at least 8192); past it: 431, connection
    # closed.
    http_max_header_bytes: int = 64 * 1024
    # Open connections per worker process; past it new connections wait in the listen backlog
    # (they cost the worker no file handle and no memory) until one closes. 0: the open-file
    # limit less 256 kept for log segments, models and the registry (`mlgate serve` raises its
    # soft open-file limit to the hard one first, so that is ulimit -Hn less 256).
    max_connections: int = 0
    # -- batching --
    max_batch_rows: int = 256  # rows per computed batch (a larger request runs alone)
    max_delay_us: int = 0  # 0: no added delay, a batch starts as soon as the runtime is free
    max_queue_rows: int = 8_192  # per loaded version; past it: 503 + Retry-After
    parallel_batches: int = 1  # batches of one version computed at once
    inference_threads: int = 0  # worker threads for inference; 0 = number of CPUs
    # A batch the runtime is expected to compute within this many microseconds (its recent
    # time per row x the batch's rows) runs on the event loop: handing a 10 us batch to an
    # inference thread and back costs the loop more than computing it. 0: always on a thread.
    inline_compute_us: int = 100
    request_timeout_s: float = 30.0  # past it: 504
    # How long the event loop may hold the GIL before an inference thread gets it (Python's
    # default is 5 ms, which then adds up to twice that to every batch under load); 0 keeps it.
    gil_switch_interval_s: float = 0.0005
    # Move the objects alive after start-up and after each model load out of the garbage
    # collector's reach (gc.freeze), so that full collections stay short under load.
    gc_freeze: bool = True
    blas_threads: int = 1  # threads of numpy's BLAS (MLP matrix products); 0 leaves it alone
    retry_after_s: int = 1  # the Retry-After of a 503 (queue full, model loading, stopping)
    # -- hot-loading --
    backend: str = "auto"  # runtime backend: auto | numba | onnx | sklearn
    poll_interval_s: float = 1.0  # route.json stamp polling
    list_interval_s: float = 10.0  # registry.list() polling for new models
    warmup_rows: int = 8  # rows a new version predicts before it takes traffic
    # numba runtimes saved as arrays by artifact sha256, so that a restart serves them without
    # importing scikit-learn: "auto" = $XDG_CACHE_HOME/mlgate/runtimes (~/.cache/...); "": off
    runtime_cache_dir: str = "auto"
    # past this size the least recently used saved runtimes are deleted (each trainer run adds
    # a version; the reference forest's is 15 MB)
    runtime_cache_max_bytes: int = 2 * 1024 * 1024 * 1024
    # a version that failed to load is tried again after load_retry_initial_s, doubling up to
    # load_retry_max_s (a fixed artifact or a registry back up is picked up without a restart)
    load_retry_initial_s: float = 1.0
    load_retry_max_s: float = 60.0  # see load_retry_initial_s
    drain_timeout_s: float = 30.0  # a retired version (and shadow copies) drain at most this long
    # -- routing and identity --
    routing_header: str = "X-Routing-Key"  # keeps a caller on one side of a canary
    request_id_header: str = "X-Request-Id"  # a client's request id (else the OIP id, else new)
    default_model: str | None = None  # for /invocations without ?model=
    # -- prediction log --
    log_predictions: bool = True  # write every answered row to the log store
    log_flush_rows: int = 50_000  # a segment is written after this many rows ...
    log_flush_interval_s: float = 5.0  # ... or this many seconds, whichever first
    log_buffer_rows: int = 500_000  # past it rows are dropped and counted
    log_compression: str = "lz4"  # segment codec: lz4 | zstd | snappy | uncompressed
    # crash journal: each answered batch is written (one os.write) to a per-worker journal
    # before its answers are sent, so a killed worker loses no answered row (replayed into
    # segments at the next start on the same directory)
    log_journal: bool = True
    log_journal_dir: str | None = None  # default: <logs>/_journal (local logs), else a temp dir
    # none: the OS has each batch once written (survives a process crash, not a power loss);
    # always: fdatasync after every write (survives a power loss, costs a disk flush a batch)
    log_journal_fsync: str = "none"
    worker_id: str | None = None  # default: <host>-<pid>-<random>
    # -- shadows --
    shadow_max_inflight_rows: int = 4_096  # past it shadow copies are dropped and counted
    # OIP over gRPC (gateway.grpc), beside HTTP on every worker of `mlgate serve`; 0: no gRPC
    grpc_port: int = 8081
    grpc_host: str | None = None  # None: the address HTTP listens on (`mlgate serve --host`)
    grpc_reuse_port: bool = False  # workers share the port (`mlgate serve --workers N` sets it)
    # -- security --
    admin_token: str | None = None  # None: the admin API is disabled (403)
    predict_token: str | None = None  # None: predict endpoints are open

    def __post_init__(self) -> None:
        positive = {
            "max_body_bytes": self.max_body_bytes,
            "max_request_rows": self.max_request_rows,
            "max_feedback_labels": self.max_feedback_labels,
            "max_batch_rows": self.max_batch_rows,
            "max_queue_rows": self.max_queue_rows,
            "parallel_batches": self.parallel_batches,
            "request_timeout_s": self.request_timeout_s,
            "poll_interval_s": self.poll_interval_s,
            "list_interval_s": self.list_interval_s,
            "load_retry_initial_s": self.load_retry_initial_s,
            "load_retry_max_s": self.load_retry_max_s,
            "log_flush_rows": self.log_flush_rows,
            "log_flush_interval_s": self.log_flush_interval_s,
            "log_buffer_rows": self.log_buffer_rows,
            "http_header_timeout_s": self.http_header_timeout_s,
        }
        for name, value in positive.items():
            if value <= 0:
                raise SettingsError(f"gateway setting {name!r}: expected > 0, got {value!r}")
        for name, value in {
            "max_delay_us": self.max_delay_us,
            "inference_threads": self.inference_threads,
            "inline_compute_us": self.inline_compute_us,
            "warmup_rows": self.warmup_rows,
            "decode_off_loop_bytes": self.decode_off_loop_bytes,
            "feedback_process_bytes": self.feedback_process_bytes,
            "feedback_match_ids": self.feedback_match_ids,
            "shadow_max_inflight_rows": self.shadow_max_inflight_rows,
            "max_connections": self.max_connections,
            "runtime_cache_max_bytes": self.runtime_cache_max_bytes,
        }.items():
            if value < 0:
                raise SettingsError(f"gateway setting {name!r}: expected >= 0, got {value!r}")
        if not 0 <= self.grpc_port <= 65535:
            raise SettingsError(
                f"gateway setting 'grpc_port': expected 0 (off) to 65535, got {self.grpc_port!r}"
            )
        if self.http_max_header_bytes < 8192:
            raise SettingsError(
                f"gateway setting 'http_max_header_bytes': expected >= 8192, "
                f"got {self.http_max_header_bytes!r}"
            )
        if self.log_compression not in SEGMENT_CODECS:
            raise SettingsError(
                f"gateway setting 'log_compression': expected one of {', '.join(SEGMENT_CODECS)},"
                f" got {self.log_compression!r}"
            )
        if self.log_journal_fsync not in ("none", "always"):
            raise SettingsError(
                f"gateway setting 'log_journal_fsync': expected none or always, "
                f"got {self.log_journal_fsync!r}"
            )
        if self.backend not in ("auto", "numba", "onnx", "sklearn"):
            raise SettingsError(
                f"gateway setting 'backend': expected auto, numba, onnx or sklearn, "
                f"got {self.backend!r}"
            )

    def saved_runtimes(self) -> SavedRuntimes | None:
        """Where compiled runtimes are saved (``runtime_cache_dir``; None: off)."""
        if not self.runtime_cache_dir:
            return None
        from gateway.runtimes.numba.saved import SavedRuntimes

        directory = self.runtime_cache_dir
        if directory == "auto":
            root = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
            directory = os.path.join(root, "mlgate", "runtimes")
        return SavedRuntimes(os.path.expanduser(directory), max_bytes=self.runtime_cache_max_bytes)

    @property
    def request_id_header_lower(self) -> str:
        return self.request_id_header.lower()

    @property
    def routing_header_lower(self) -> str:
        return self.routing_header.lower()

    @property
    def connections_per_worker(self) -> int:
        """The connection cap actually used: ``max_connections``, else the open-file limit
        less 256 (at least 64)."""
        if self.max_connections:
            return self.max_connections
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return 65_536
        return max(64, soft - 256)

    @property
    def threads(self) -> int:
        """Inference worker threads actually used."""
        return self.inference_threads or (os.cpu_count() or 2)

    @classmethod
    def from_mapping(
        cls, values: dict[str, Any] | None = None, *, environ: dict[str, str] | None = None
    ) -> GatewaySettings:
        """Build from a ``[gateway]`` table; tokens default to the environment variables."""
        env = os.environ if environ is None else environ
        data = dict(values or {})
        if "admin_token" not in data and env.get("MLGATE_ADMIN_TOKEN"):
            data["admin_token"] = env["MLGATE_ADMIN_TOKEN"]
        if "predict_token" not in data and env.get("MLGATE_PREDICT_TOKEN"):
            data["predict_token"] = env["MLGATE_PREDICT_TOKEN"]
        try:
            return msgspec.convert(data, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"[gateway] settings: {exc}") from exc

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, raw: bytes | str) -> GatewaySettings:
        try:
            return msgspec.json.decode(raw, type=cls)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"gateway settings: {exc}") from exc
