"""Frozen reference profiles: the bins and counts every window is compared with.

A profile is computed once from a version's ``reference.parquet`` (and from the model's
predictions on it) and never re-binned on current data. Numeric columns get ``fine_bins``
reference-quantile boundaries (for KS and Wasserstein); the ``bins`` coarse quantile edges
(for PSI, JS) are a subset of them, so coarse counts are sums of fine counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from monitor.stats.binning import categorical_codes

NUMERIC = "numeric"
CATEGORICAL = "categorical"


@dataclass
class ColumnProfile:
    """Reference bins and counts of one column (feature, prediction or score)."""

    name: str
    kind: str  # numeric | categorical
    role: str  # feature | prediction | score
    ref_rows: int
    ref_nulls: int
    counts: np.ndarray  # int64 per fine bin (numeric: m + 2; categorical: 1 + len(categories))
    coarse: np.ndarray  # coarse bin of each fine bin
    boundaries: np.ndarray = field(default_factory=lambda: np.zeros(0))
    categories: list[str] = field(default_factory=list)
    mean: float | None = None
    std: float | None = None

    @property
    def n_bins(self) -> int:
        return len(self.counts)

    @property
    def constant(self) -> bool:
        return self.kind == NUMERIC and (self.std is None or self.std == 0.0)

    def labels(self) -> list[str]:
        """A human label per coarse bin (for reports)."""
        if self.kind == CATEGORICAL:
            return ["(unseen)", *self.categories]
        edges = coarse_edges(self)
        out = [f"< {_fmt(edges[0])}"]
        out.append(f"= {_fmt(edges[0])}")
        out += [f"({_fmt(a)}, {_fmt(b)}]" for a, b in zip(edges[:-1], edges[1:], strict=True)]
        out.append(f"> {_fmt(edges[-1])}")
        return out


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def coarse_edges(profile: ColumnProfile) -> np.ndarray:
    """The coarse quantile edges, recovered from the fine-to-coarse map."""
    b = profile.boundaries
    coarse = profile.coarse
    # fine bin k (1..m) has upper edge b[k-1]; a coarse edge ends where the coarse id changes
    ends = [b[k - 1] for k in range(1, len(b) + 1) if k == len(b) or coarse[k] != coarse[k + 1]]
    return np.asarray(ends, dtype=np.float64)


def numeric_profile(
    name: str, values: np.ndarray, *, bins: int, fine_bins: int, role: str = "feature"
) -> ColumnProfile:
    """Freeze quantile bins of ``values`` (NaN/inf are nulls).

    >>> p = numeric_profile("x", np.arange(100.0), bins=4, fine_bins=20)
    >>> int(p.counts.sum()), sorted(set(p.coarse.tolist()))
    (100, [0, 1, 2, 3, 4, 5, 6])
    """
    x = np.asarray(values, dtype=np.float64)
    finite = np.sort(x[np.isfinite(x)])
    nulls = int(len(x) - len(finite))
    if len(finite) == 0:
        # all-null reference: one degenerate boundary so every finite value is out of range
        boundaries = np.array([0.0])
        mean = std = None
    else:
        fine = _quantiles(finite, fine_bins)
        step = np.round(np.arange(bins + 1) * fine_bins / bins).astype(np.int64)
        boundaries = np.unique(fine)
        coarse_b = np.unique(fine[step])
        mean = float(finite.mean())
        std = float(finite.std())
    counts = _sorted_counts(finite, boundaries)
    if len(finite) == 0:
        coarse_b = boundaries
    coarse_map = _coarse_map(boundaries, coarse_b)
    return ColumnProfile(
        name=name,
        kind=NUMERIC,
        role=role,
        ref_rows=len(x),
        ref_nulls=nulls,
        counts=counts,
        coarse=coarse_map,
        boundaries=boundaries,
        mean=mean,
        std=std,
    )


def _sorted_counts(s: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
    """Bin counts of sorted finite values (the binning rule of ``monitor.stats.binning``).

    >>> _sorted_counts(np.array([-1.0, 0.0, 0.5, 1.0, 2.0]), np.array([0.0, 1.0])).tolist()
    [1, 1, 2, 1]
    """
    below = np.searchsorted(s, boundaries[0], side="left")  # x < B[0]
    upto = np.searchsorted(s, boundaries, side="right")  # x <= B[k]
    edges = np.concatenate([[0, below], upto, [len(s)]])
    return np.diff(edges).astype(np.int64)


def _quantiles(s: np.ndarray, n: int) -> np.ndarray:
    """``np.quantile(s, linspace(0, 1, n + 1))`` (linear method) of an already sorted ``s``.

    >>> _quantiles(np.array([1.0, 2.0, 3.0, 4.0]), 2).tolist()
    [1.0, 2.5, 4.0]
    """
    pos = np.linspace(0.0, 1.0, n + 1) * (len(s) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(s) - 1)
    frac = pos - lo
    return np.asarray(s[lo] + (s[hi] - s[lo]) * frac, dtype=np.float64)


def coarse_counts(counts: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Sum fine-bin counts into their coarse bins.

    >>> coarse_counts(np.array([1, 2, 3, 4]), np.array([0, 1, 1, 2])).tolist()
    [1, 5, 4]
    """
    n = int(coarse.max()) + 1 if len(coarse) else 0
    return np.bincount(coarse, weights=counts, minlength=n).astype(np.int64)


def _coarse_map(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    m, mc = len(fine), len(coarse)
    out = np.empty(m + 2, dtype=np.int64)
    out[0] = 0
    out[1 : m + 1] = np.searchsorted(coarse, fine, side="left") + 1
    out[m + 1] = mc + 1
    return out


def categorical_profile(
    name: str, values: list[object], *, categories: list[str] | None, role: str = "feature"
) -> ColumnProfile:
    """Category frequencies plus an ``unseen`` bucket (code 0); nulls counted apart.

    >>> p = categorical_profile("c", ["a", "b", "a", None], categories=None)
    >>> p.categories, p.counts.tolist(), p.ref_nulls
    (['a', 'b'], [0, 2, 1], 1)
    """
    if categories is None:
        categories = sorted({str(v) for v in values if v is not None})
    cats = [str(c) for c in categories]
    codes = categorical_codes(values, cats)
    valid = codes[codes >= 0]
    counts = np.bincount(valid, minlength=len(cats) + 1).astype(np.int64)
    return ColumnProfile(
        name=name,
        kind=CATEGORICAL,
        role=role,
        ref_rows=len(codes),
        ref_nulls=int((codes < 0).sum()),
        counts=counts,
        coarse=np.arange(len(cats) + 1, dtype=np.int64),
        categories=cats,
    )


@dataclass
class ReferenceProfile:
    """Every column profile of one reference (features) or one model on it (predictions)."""

    profile_id: str
    columns: list[ColumnProfile]
    rows: int

    def column(self, name: str) -> ColumnProfile:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"profile {self.profile_id}: no column {name!r}")
