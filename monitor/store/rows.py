"""Named rows: what the store hands the other stages (never a positional tuple)."""

from __future__ import annotations

from typing import NamedTuple


class SegmentRow(NamedTuple):
    """One log segment the monitor has looked at (``segments``)."""

    path: str
    kind: str
    model: str | None
    size: int
    mtime_ns: int
    rows: int
    status: str  # ok | problem | corrupt_segment | foreign_segment | foreign_file
    detail: str | None
    ingested_at: float
    fingerprint: str | None = None  # size and hash of the file's tail (LogStore.fingerprint)


class WindowRow(NamedTuple):
    """A window of one (model, version, route) stream (``windows``)."""

    window_id: int
    model: str
    version: int
    route: str
    seq: int
    rows: int
    start_us: int | None
    end_us: int | None


class OpenWindow(NamedTuple):
    """A stored window that a segment may still add rows to."""

    window_id: int
    seq: int
    rows: int


class StoredCounts(NamedTuple):
    """One column's counts of a stored window (``window_counts``)."""

    name: str
    cum: list[int]
    nulls: int
    under_sum: float
    over_sum: float
    total: float
    total_sq: float


class LabelledError(NamedTuple):
    """A newly labelled classification row: was the prediction wrong."""

    version: int
    route: str
    window_id: int
    error: bool


class LabelledRow(NamedTuple):
    """A prediction with its label (``prediction_rows`` joined with ``feedback``)."""

    prediction: float | None  # class code (1 + position in the classes) or value
    probas: list[float] | None
    label: str | None
    label_value: float | None


class SummaryRow(NamedTuple):
    """A computed window for the report (``summaries`` with its window's span)."""

    window_id: int
    version: int
    route: str
    seq: int
    start_us: int | None
    end_us: int | None
    rows: int
    share_drifted: float | None
    dataset_drift: bool
    prediction: str | None  # JSON
    performance: str | None  # JSON
    labelled_rows: int


class DegradedWindow(NamedTuple):
    """What a ``model.performance.degraded`` alert says about its window."""

    seq: int | None
    start_us: int | None
    end_us: int | None
    rows: int | None
    performance: str | None  # JSON
    share_drifted: float | None
    dataset_drift: bool | None
    drifted_features: list[str]


class AlertState(NamedTuple):
    drifting: bool
    degraded: bool


class OutboxMessage(NamedTuple):
    """One queued message as the report shows it."""

    id: str
    endpoint: str
    event_type: str
    status: str  # pending | delivered | suppressed | failed
    attempts: int
    last_error: str | None
    created_at: float
    delivered_at: float | None


class DueMessage(NamedTuple):
    """A pending message whose next attempt is due."""

    id: str
    endpoint: str
    body: str
    created_at: float
    attempts: int
    alert_id: str  # the id every destination sees (``webhook-id``, ``detail.alert_id``)


class ColumnCounts(NamedTuple):
    """Reference and window counts of one column, for the report's distributions."""

    name: str
    ref_coarse: list[int]
    ref_nulls: int
    coarse: list[int]
    nulls: int


class LatestSummary(NamedTuple):
    """A model's latest computed window (a champion window when it has one)."""

    model: str
    window_id: int
    version: int
    route: str
    start_us: int | None
    end_us: int | None
    rows: int | None
    n_features: int | None
    n_drifted: int | None
    share_drifted: float | None
    dataset_drift: bool | None
    drifted_features: list[str] | None


class GridWindow(NamedTuple):
    """One window of a dashboard's window x feature grid."""

    window_id: int
    start_us: int | None
    end_us: int | None
    rows: int | None
    share_drifted: float | None
    share_threshold: float | None
    dataset_drift: bool | None
    prediction: str | None  # JSON
    performance: str | None  # JSON
    labelled_rows: int | None
    seq: int


class MetricResult(NamedTuple):
    """One feature's figure of one statistic in one window, with its threshold."""

    window_id: int
    name: str
    kind: str
    value: float | None
    threshold: float | None
    drifted: bool


class NewestMessage(NamedTuple):
    """An outbox message for a dashboard, with the model and version it is about."""

    id: str
    endpoint: str
    event_type: str
    model: str
    version: str
    status: str
    attempts: int
    last_error: str | None
    created_at: float | None
    delivered_at: float | None
    next_attempt_at: float | None


class EndpointCounts(NamedTuple):
    """Messages of one endpoint by status."""

    endpoint: str
    delivered: int
    pending: int
    failed: int
    suppressed: int
    last_error: str | None
    last_delivered_at: float | None
