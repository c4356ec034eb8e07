"""Monitor settings: windows, thresholds, detectors and alert endpoints.

Every default below is documented here and can be overridden in the ``[monitor]`` table of
``mlgate.toml`` (keys are the field names), webhooks in ``[[monitor.webhooks]]`` tables, and a
single extra endpoint by ``MLGATE_WEBHOOK_URL`` / ``MLGATE_WEBHOOK_SECRET``. Any setting can
also come from ``MLGATE_MONITOR_<NAME>`` (e.g. ``MLGATE_MONITOR_WINDOW_ROWS=500``), which wins
over the file. Times are in seconds and named ``*_s``; the older ``*_seconds`` names are still
read, with a deprecation warning.

Defaults and why:

- ``window_rows = 1000``: a window closes after this many rows per model, version and route;
  ``window_s`` switches to tumbling time windows instead.
- ``bins = 10`` reference-quantile bins (plus underflow, overflow and null) for PSI, JS and
  chi-square; ``fine_bins = 1000`` reference-quantile boundaries for KS and Wasserstein
  (binned KS is then within 1/1000 of the exact statistic).
- A feature drifts when PSI >= 0.2, or Wasserstein / reference std >= 0.1, or JS distance
  >= 0.1 (or the null rate rises by >= 0.1, or unseen categories reach 0.1 of the rows), in a
  window of at least ``min_rows = 500`` rows, for ``consecutive = 2`` windows in a row. A
  distance also has to clear its noise floor, ``noise_z = 4`` standard deviations above what
  sampling noise alone gives it for the window's and the reference's sizes (a 1,000-row
  window against a 1,000-row reference reads Wasserstein / std ~0.06 and JS ~0.07 with
  nothing drifting, and crossed 0.1 in consecutive windows on stationary traffic); the
  effective threshold is stored per window (``results.*_threshold``). The KS
  and chi-square p-values are reported as supporting evidence only: with large windows they
  reject for effects nobody cares about.
- Dataset drift when the share of drifted features reaches ``dataset_drift_share = 0.5``.
- A segment's columns are decoded ``read_columns = 12`` at a time: Arrow's Parquet reader
  holds ~3 MiB of page and decode buffers for every column it reads, so all 36 columns of a
  32-feature segment at once held ~105 MiB, ~35 MiB a read of 12 (same CPU time; the
  10M-row benchmark peaked at 482 instead of 543 MiB).
- DuckDB runs on ``duckdb_threads = 2`` with ``duckdb_memory_limit = "64MB"`` (it spills
  to disk past that rather than growing; its buffer pool otherwise keeps the prediction rows
  of a whole pass cached, ~16 MiB per 1M rows, and the 10M-row benchmark peaked at 536
  instead of 477 MiB with 128MB). The statistics query takes as many windows at a time as
  the limit allows (~180 bytes per reference bin of a window, see
  ``monitor.compute.summaries.chunk_windows``);
  ``release_between_passes`` closes the file after each pass so that ``mlgate monitor
  report`` can read it meanwhile.
- Labels (matched to a prediction or not: an unknown request id) are dropped
  ``label_horizon_s`` after they arrived, and prediction rows kept for the feedback join
  ``label_horizon_s`` (7 days)
  after their window ends; metrics of a window with fewer than ``min_labels`` labels are
  reported but flagged ``enough_labels: false``.
- Every alert is also appended to the model's registry audit trail (``events.jsonl``, actor
  ``monitor``, ``detail.alert_id`` = the ``webhook-id``), through the same outbox, exactly once
  and never subject to the cooldown. Registry events of kinds ``rollout.*`` and ``trainer.*``
  go the other way: each is forwarded once to the endpoints that want it (a cursor per model
  in the monitor's DuckDB file).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import warnings
from dataclasses import dataclass, field, fields
from typing import Any

log = logging.getLogger(__name__)

EVENT_DRIFT_DETECTED = "model.drift.detected"
EVENT_DRIFT_RESOLVED = "model.drift.resolved"
EVENT_PERFORMANCE_DEGRADED = "model.performance.degraded"
EVENT_TYPES = (EVENT_DRIFT_DETECTED, EVENT_DRIFT_RESOLVED, EVENT_PERFORMANCE_DEGRADED)
# registry events the monitor forwards to the webhooks (written by the trainer and the rollout
# controller through ``Registry.record_event``); an endpoint names them by pattern or exactly
FORWARDED_PATTERNS = ("rollout.*", "trainer.*")

FORMATS = ("standard", "alertmanager")

# settings renamed to the project's unit suffix (``_s``); the old names still work, with a
# warning, in ``[monitor]`` and in ``MLGATE_MONITOR_<NAME>`` variables
DEPRECATED = {
    f"{name}_seconds": f"{name}_s"
    for name in ("window", "lateness", "label_horizon", "interval", "cooldown",
                 "webhook_timeout", "retry_base", "retry_max", "retry_give_up")
}  # fmt: skip
ENV_PREFIX = "MLGATE_MONITOR_"


class MonitorConfigError(ValueError):
    """A ``[monitor]`` setting has the wrong type or value."""


@dataclass(frozen=True)
class WebhookEndpoint:
    """One alert receiver: Standard Webhooks (signed) or Alertmanager ``/api/v2/alerts``.

    ``events`` defaults to the monitor's alerts plus the forwarded registry events
    (``rollout.*``, ``trainer.*``) for the standard format, and to the monitor's alerts only
    for Alertmanager (which models firing conditions, not a log of rollout steps).
    """

    url: str  # http(s) URL the alerts are POSTed to
    secret: str | None = None  # whsec_ + base64 signing key (Standard Webhooks); None: unsigned
    format: str = "standard"  # "standard" (Standard Webhooks JSON) or "alertmanager"
    # event types or patterns sent here (e.g. ["model.drift.*", "rollout.*"]); default: all
    # for "standard", the monitor's alerts for "alertmanager"
    events: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise MonitorConfigError(f"webhook url: expected http(s)://..., got {self.url!r}")
        if self.format not in FORMATS:
            raise MonitorConfigError(
                f"webhook {self.url}: format must be one of {FORMATS}, got {self.format!r}"
            )
        if self.secret is not None:
            from monitor.alerts.webhooks import WebhookSecretError, secret_key

            try:
                secret_key(self.secret)
            except WebhookSecretError as exc:
                raise MonitorConfigError(f"webhook {self.url}: {exc}") from exc
        if self.events is None:
            default = (
                EVENT_TYPES if self.format == "alertmanager" else EVENT_TYPES + FORWARDED_PATTERNS
            )
            object.__setattr__(self, "events", default)
        unknown = [e for e in self.subscribed if not _known_event(e)]
        if unknown:
            raise MonitorConfigError(
                f"webhook {self.url}: unknown event types {unknown};"
                f" known: {EVENT_TYPES + FORWARDED_PATTERNS}"
            )

    @property
    def subscribed(self) -> tuple[str, ...]:
        """The event types and patterns this endpoint receives."""
        return self.events or ()

    def wants(self, event_type: str) -> bool:
        """Whether ``event_type`` goes to this endpoint.

        >>> WebhookEndpoint(url="http://127.0.0.1/h").wants("rollout.step")
        True
        >>> WebhookEndpoint(url="http://127.0.0.1/h", format="alertmanager").wants("trainer.run")
        False
        """
        return any(fnmatch.fnmatchcase(event_type, e) for e in self.subscribed)


def _known_event(name: str) -> bool:
    return name in EVENT_TYPES or name in FORWARDED_PATTERNS or is_forwarded(name)


def is_forwarded(kind: str) -> bool:
    """Whether a registry event of this ``kind`` is forwarded to the webhooks.

    >>> is_forwarded("rollout.step"), is_forwarded("trainer.run.finished"), is_forwarded("promote")
    (True, True, False)
    """
    return any(fnmatch.fnmatchcase(kind, p) for p in FORWARDED_PATTERNS)


@dataclass(frozen=True)
class MonitorConfig:
    """All monitor knobs; see the module docstring for the defaults' reasons."""

    # -- windows --
    window_rows: int = 1000  # a window closes after this many rows per model, version, route
    window_s: float | None = None  # tumbling time windows of this many seconds instead of rows
    lateness_s: float = 60.0  # time windows: rows this late still join their window
    # -- statistics --
    bins: int = 10  # reference-quantile bins for PSI, JS and chi-square (+ under/overflow, null)
    fine_bins: int = 1000  # reference-quantile boundaries for KS and Wasserstein
    min_rows: int = 500  # a window with fewer rows is reported but never judged
    consecutive: int = 2  # a column drifts after this many raw-flagged windows in a row
    psi_threshold: float = 0.2  # population stability index at or above which a column flags
    wasserstein_threshold: float = 0.1  # Wasserstein distance / reference std, at or above
    js_threshold: float = 0.1  # Jensen-Shannon distance at or above which a column flags
    # a distance counts only when it also clears what sampling noise alone gives it at the
    # window's and the reference's sizes, this many standard deviations above its mean
    # (monitor.compute.statistics); 0 keeps only the mean
    noise_z: float = 4.0
    ks_pvalue: float = 0.05  # KS p-value below which the supporting signal is set (no verdict)
    chi2_pvalue: float = 0.05  # chi-square p-value, likewise supporting evidence only
    null_rate_threshold: float = 0.1  # increase of the null share over the reference's
    unseen_threshold: float = 0.1  # share of rows with a category unseen in the reference
    dataset_drift_share: float = 0.5  # dataset drift when this share of features drifts
    alert_on: str = "dataset"  # "dataset": dataset drift only; "feature": any drifted feature
    # -- labels and detectors --
    adwin_delta: float = 0.002  # ADWIN's confidence on the prediction-confidence stream
    detector_batch_rows: int = 100  # ADWIN is fed the mean confidence of this many rows
    min_labels: int = 50  # a window's metrics with fewer labels are flagged not enough
    keep_prediction_rows: bool = True  # keep rows for joining labels that arrive later
    label_horizon_s: float = 7 * 86400.0  # kept rows are dropped this long after their window
    # -- passes and alerts --
    interval_s: float = 30.0  # seconds between monitor passes
    cooldown_s: float = 3600.0  # a repeat of the same alert to an endpoint is held back this long
    webhook_timeout_s: float = 5.0  # one delivery attempt gives up after this
    retry_base_s: float = 2.0  # first retry delay of a failed delivery (then doubling)
    retry_max_s: float = 300.0  # longest delay between retries
    retry_give_up_s: float = 86400.0  # a delivery failing this long is given up (and counted)
    # -- reading segments --
    read_columns: int = 12  # log columns decoded at once (Arrow holds ~3 MiB for each)
    # -- DuckDB --
    duckdb_threads: int = 2  # threads of the monitor's DuckDB
    duckdb_memory_limit: str = "64MB"  # DuckDB spills to disk past this rather than growing
    release_between_passes: bool = True  # close the state file between passes (reports read it)
    # alert receivers: [[monitor.webhooks]] tables (see [monitor.webhooks] below)
    webhooks: tuple[WebhookEndpoint, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.noise_z >= 0:
            raise MonitorConfigError(f"noise_z: expected >= 0, got {self.noise_z}")
        if self.window_rows < 1:
            raise MonitorConfigError(f"window_rows: expected >= 1, got {self.window_rows}")
        if self.read_columns < 1:
            raise MonitorConfigError(f"read_columns: expected >= 1, got {self.read_columns}")
        if self.bins < 2 or self.fine_bins < self.bins:
            raise MonitorConfigError(
                f"bins/fine_bins: expected 2 <= bins <= fine_bins, got {self.bins}/{self.fine_bins}"
            )
        if self.consecutive < 1:
            raise MonitorConfigError(f"consecutive: expected >= 1, got {self.consecutive}")
        if self.alert_on not in ("dataset", "feature"):
            raise MonitorConfigError(f"alert_on: expected dataset|feature, got {self.alert_on!r}")

    @classmethod
    def from_section(
        cls, section: dict[str, Any], *, environ: dict[str, str] | None = None
    ) -> MonitorConfig:
        """Build from the ``[monitor]`` table of ``mlgate.toml``, then ``MLGATE_MONITOR_<NAME>``
        variables (which win), plus the webhook variables.

        >>> MonitorConfig.from_section({"interval_s": 5}, environ={}).interval_s
        5.0
        >>> MonitorConfig.from_section({}, environ={"MLGATE_MONITOR_WINDOW_ROWS": "50"}).window_rows
        50
        """
        environ = dict(os.environ) if environ is None else environ
        known = {f.name for f in fields(cls)} - {"webhooks"}
        kwargs: dict[str, Any] = {}
        for key, value in section.items():
            if key == "webhooks":
                continue
            name = _current(key, f"[monitor] {key}")
            if name not in known:
                raise MonitorConfigError(
                    f"[monitor] {key}: unknown setting; known: {sorted(known)}"
                )
            kwargs[name] = _coerce(key, value, getattr(cls, name, None))
        for var, raw in sorted(environ.items()):
            key = var[len(ENV_PREFIX) :].lower()
            # other MLGATE_MONITOR_* variables belong to the CLI (METRICS_PORT, …)
            if not var.startswith(ENV_PREFIX) or (key not in known and key not in DEPRECATED):
                continue
            name = _current(key, var)
            kwargs[name] = _coerce(var, _parse_env(raw), getattr(cls, name, None))
        hooks = [_endpoint(h) for h in section.get("webhooks", []) or []]
        url = environ.get("MLGATE_WEBHOOK_URL")
        if url:
            hooks.append(WebhookEndpoint(url=url, secret=environ.get("MLGATE_WEBHOOK_SECRET")))
        kwargs["webhooks"] = tuple(hooks)
        return cls(**kwargs)


def _current(key: str, where: str) -> str:
    """The setting's name today: a deprecated one is mapped, with a warning."""
    if key in DEPRECATED:
        new = DEPRECATED[key]
        warnings.warn(f"{where}: renamed to {new!r}; the old name will go", DeprecationWarning,
                      stacklevel=3)  # fmt: skip
        log.warning("%s: deprecated setting name, use %s", where, new)
        return new
    return key


def _parse_env(raw: str) -> Any:
    """An environment value as TOML would have it: number, true/false, else the text."""
    text = raw.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return raw


def _coerce(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise MonitorConfigError(f"[monitor] {key}: expected true/false, got {value!r}")
        return value
    if isinstance(default, int | float) or default is None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MonitorConfigError(f"[monitor] {key}: expected a number, got {value!r}")
        return type(default)(value) if default is not None else float(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise MonitorConfigError(f"[monitor] {key}: expected a string, got {value!r}")
    return value


def _endpoint(raw: Any) -> WebhookEndpoint:
    if not isinstance(raw, dict) or "url" not in raw:
        raise MonitorConfigError(f"[[monitor.webhooks]]: expected a table with url, got {raw!r}")
    events = raw.get("events")
    if isinstance(events, str):
        events = [events]
    return WebhookEndpoint(
        url=str(raw["url"]),
        secret=raw.get("secret"),
        format=str(raw.get("format", "standard")),
        events=tuple(events) if events is not None else None,
    )
