"""Inline SVG charts, rendered on the server from the pages' JSON documents.

Server-rendered SVG rather than a plotting library: the pages stay a few tens of kilobytes
with no script to download or parse before the first paint, work offline with nothing
shipped beside them, and every figure is in the markup (a ``<title>`` per mark gives its
value on hover, and tests read the same markup).
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from collections.abc import Sequence

REF_COLOR = "#7a8ca3"
CUR_COLOR = "#e07b39"
PALETTE = ("#2b6cb0", "#e07b39", "#2f855a", "#b83280", "#6b46c1", "#c05621")
ALERT_COLOR = "#c53030"
RUN_COLOR = "#2f855a"


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}"


def _cell_color(ratio: float | None) -> str:
    """White (0) to amber (at the threshold) to red (twice the threshold or more)."""
    if ratio is None:
        return "#eeeeee"
    r = max(0.0, min(ratio, 2.0))
    if r <= 1.0:  # white -> amber
        g = int(255 - 75 * r)
        b = int(255 - 200 * r)
        return f"#ff{g:02x}{b:02x}"
    t = r - 1.0  # amber -> red
    return f"#{int(255 - 55 * t):02x}{int(180 - 150 * t):02x}{int(55 - 25 * t):02x}"


def _ratio(value: float | None, threshold: float | None, low_is_drift: bool) -> float | None:
    """How far ``value`` is toward (1.0) and past its threshold."""
    if value is None or threshold is None or threshold <= 0:
        return None
    if low_is_drift:  # p-values: 1 at the threshold, 2 at a hundredth of it
        if value >= 1.0:
            return 0.0
        if value <= 0:
            return 2.0
        import math

        return max(0.0, math.log10(1.0 / value) / max(math.log10(1.0 / threshold), 1e-9))
    return value / threshold


def _merge(
    values: Sequence[float | None], drifted: Sequence[bool], size: int, low: bool
) -> tuple[list[float | None], list[bool]]:
    """Group consecutive windows into ``size``-wide columns, keeping each group's worst."""
    out_v: list[float | None] = []
    out_d: list[bool] = []
    for i in range(0, len(values), size):
        chunk = [v for v in values[i : i + size] if v is not None]
        out_v.append((min(chunk) if low else max(chunk)) if chunk else None)
        out_d.append(any(drifted[i : i + size]))
    return out_v, out_d


def heatmap(
    grid: dict[str, object],
    *,
    markers: Sequence[dict[str, object]] = (),
    max_columns: int = 80,
    selected_window: int | None = None,
    link: str = "",
) -> str:
    """Features (rows) x windows (columns) coloured by the metric relative to its threshold.

    Past ``max_columns`` windows, neighbours are merged (the worst figure of each group).
    Alerts (red) and trainer runs (green) are ticks on the same time axis above the grid.
    A click on a cell opens ``link`` + ``window=<id>&feature=<name>`` (``app.js``).
    """
    windows: list[dict[str, object]] = list(grid["windows"])  # type: ignore[call-overload]
    features: list[dict[str, object]] = list(grid["features"])  # type: ignore[call-overload]
    if not windows or not features:
        return "<p class='muted'>no window to show</p>"
    low = grid.get("drift_when") == "below"
    size = max(1, -(-len(windows) // max_columns))
    columns = -(-len(windows) // size)
    label_w, cell_h, top = 130, 16, 26
    cell_w = max(3.0, min(60.0, 720 / columns))
    width = max(label_w + cell_w * columns + 10, label_w + 330)
    height = top + cell_h * len(features) + 34
    parts = [
        f'<svg class="chart heat" viewBox="0 0 {width:.0f} {height}" width="{width:.0f}"'
        f' height="{height}" role="img" aria-label="drift heat map"'
        f' data-link="{escape(link)}">'
    ]
    ends = [w.get("end_s") for w in windows]
    for m in markers:
        at = _seconds(str(m.get("at") or ""))
        i = _index_at(ends, at)  # type: ignore[arg-type]
        if i is None:
            continue
        x = label_w + (i // size) * cell_w + cell_w / 2
        color = RUN_COLOR if m.get("kind") == "run" else ALERT_COLOR
        parts.append(
            f'<g class="marker {escape(str(m.get("kind")))}"><line x1="{x:.1f}" y1="4" x2="{x:.1f}"'
            f' y2="{top + cell_h * len(features):.0f}" stroke="{color}" stroke-width="1.5"'
            f' stroke-dasharray="3 2"/><circle cx="{x:.1f}" cy="8" r="4" fill="{color}">'
            f"<title>{escape(str(m.get('type')))} at {escape(str(m.get('at')))}</title>"
            "</circle></g>"
        )
    for r, f in enumerate(features):
        y = top + r * cell_h
        name = escape(str(f["name"]))
        parts.append(
            f'<text x="{label_w - 6}" y="{y + cell_h - 4}" text-anchor="end" class="lbl">'
            f'{name[:18]}</text><g class="row" data-f="{name}" transform="translate(0 {y})"'
            f' data-t="{_num(cast("float | None", f.get("threshold")))}">'
        )
        vals, drifted = _merge(f["values"], f["drifted"], size, low)  # type: ignore[arg-type]
        threshold = cast("float | None", f.get("threshold"))
        w_cell = f"{max(cell_w - 1, 1):.1f}"
        for c, (v, d) in enumerate(zip(vals, drifted, strict=True)):
            w = windows[min(c * size + size - 1, len(windows) - 1)]
            color = _cell_color(_ratio(v, threshold, low))
            extra = ' stroke="#742a2a"' if d else ""
            if selected_window == w["id"]:
                extra += ' stroke="#1a202c" stroke-width="2"'
            # compact on purpose: thousands of cells; app.js adds the tooltip and the click
            parts.append(
                f'<rect class="cell" x="{label_w + c * cell_w:.1f}" width="{w_cell}"'
                f' height="{cell_h - 1}" fill="{color}"{extra} data-w="{w["id"]}"'
                f' data-v="{_num(v)}"/>'
            )
        parts.append("</g>")
    y = top + cell_h * len(features) + 14
    parts.append(
        f'<text x="{label_w}" y="{y}" class="lbl">{escape(str(windows[0]["end"]))}</text>'
        f'<text x="{width - 10:.0f}" y="{y}" text-anchor="end" class="lbl">'
        f"{escape(str(windows[-1]['end']))}</text>"
    )
    legend = [(0.0, "0"), (0.5, ""), (1.0, "threshold"), (2.0, "2x")]
    x0 = label_w
    for i, (ratio, text) in enumerate(legend):
        x = x0 + i * 70
        parts.append(
            f'<rect x="{x}" y="{y + 6}" width="14" height="10" fill="{_cell_color(ratio)}"'
            ' stroke="#999"/>'
            f'<text x="{x + 18}" y="{y + 15}" class="lbl">{text}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _seconds(iso: str) -> float | None:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _index_at(ends: Sequence[float | None], at: float | None) -> int | None:
    """The first window that ends at or after ``at`` (the last one for later times)."""
    if at is None or not ends:
        return None
    first = ends[0]
    if first is not None and at < first - 3600 * 24 * 365:
        return None
    for i, end in enumerate(ends):
        if end is not None and end >= at:
            return i
    return len(ends) - 1


def bars(
    labels: Sequence[str],
    ref: Sequence[float],
    cur: Sequence[float],
    *,
    width: int = 520,
    height: int = 200,
) -> str:
    """Reference and current shares per bin (histogram) or category (bars), side by side."""
    n = len(labels)
    if not n:
        return "<p class='muted'>no distribution</p>"
    top = max([*ref, *cur, 1e-9])
    pad_l, pad_b = 34, 42
    slot = (width - pad_l - 6) / n
    bar = max(slot / 2 - 1, 1.0)
    parts = [
        f'<svg class="chart bars" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" role="img" aria-label="distribution">'
    ]
    plot_h = height - pad_b - 8
    for frac in (0.0, 0.5, 1.0):
        y = 8 + plot_h * (1 - frac)
        parts.append(
            f'<line x1="{pad_l}" x2="{width - 4}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{pad_l - 3}" y="{y + 3:.1f}" text-anchor="end" class="lbl">'
            f"{top * frac:.0%}</text>"
        )
    for i, label in enumerate(labels):
        x = pad_l + i * slot
        for j, (values, color, what) in enumerate(
            ((ref, REF_COLOR, "reference"), (cur, CUR_COLOR, "current"))
        ):
            v = values[i] if i < len(values) else 0.0
            h = plot_h * v / top
            parts.append(
                f'<rect class="{what}" x="{x + j * bar:.1f}" y="{8 + plot_h - h:.1f}"'
                f' width="{bar:.1f}" height="{h:.1f}" fill="{color}" data-share="{v:.6f}">'
                f"<title>{escape(label)}: {what} {v:.2%}</title></rect>"
            )
        if n <= 24 or i % max(1, n // 12) == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{height - pad_b + 14}" class="lbl tick"'
                f' transform="rotate(30 {x + slot / 2:.1f} {height - pad_b + 14})">'
                f"{escape(label[:12])}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def lines(
    xs: Sequence[float],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    markers: Sequence[dict[str, object]] = (),
    threshold: float | None = None,
    width: int = 560,
    height: int = 180,
    unit: str = "",
    label: str = "",
) -> str:
    """Lines over a time axis (``xs`` in epoch seconds); gaps where a value is None;
    alerts and runs as vertical lines; an optional dashed threshold."""
    if not xs or not any(any(v is not None for v in s) for _, s in series):
        return f"<p class='muted'>no data for {escape(label or 'this chart')} yet</p>"
    values = [v for _, s in series for v in s if v is not None]
    hi = max([*values, threshold or 0.0, 1e-9]) * 1.1
    lo = min(0.0, *values)
    x0, x1 = xs[0], xs[-1] if xs[-1] > xs[0] else xs[0] + 1
    pad_l, pad_b, pad_t = 46, 22, 8
    plot_w, plot_h = width - pad_l - 8, height - pad_b - pad_t

    def px(x: float) -> float:
        return pad_l + plot_w * (x - x0) / (x1 - x0)

    def py(y: float) -> float:
        return pad_t + plot_h * (1 - (y - lo) / (hi - lo))

    parts = [
        f'<svg class="chart lines" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" role="img" aria-label="{escape(label)}">'
    ]
    for frac in (0.0, 0.5, 1.0):
        y = lo + (hi - lo) * frac
        parts.append(
            f'<line x1="{pad_l}" x2="{width - 8}" y1="{py(y):.1f}" y2="{py(y):.1f}"'
            f' class="grid"/><text x="{pad_l - 4}" y="{py(y) + 3:.1f}" text-anchor="end"'
            f' class="lbl">{_num(y)}{escape(unit)}</text>'
        )
    if threshold is not None:
        parts.append(
            f'<line class="threshold" x1="{pad_l}" x2="{width - 8}" y1="{py(threshold):.1f}"'
            f' y2="{py(threshold):.1f}" stroke="{ALERT_COLOR}" stroke-dasharray="5 3">'
            f"<title>threshold {_num(threshold)}</title></line>"
        )
    for m in markers:
        at = _seconds(str(m.get("at") or ""))
        if at is None or not x0 <= at <= x1:
            continue
        color = RUN_COLOR if m.get("kind") == "run" else ALERT_COLOR
        parts.append(
            f'<line class="marker {escape(str(m.get("kind")))}" x1="{px(at):.1f}"'
            f' x2="{px(at):.1f}" y1="{pad_t}" y2="{pad_t + plot_h}" stroke="{color}"'
            f' stroke-dasharray="3 2"><title>{escape(str(m.get("type")))} at'
            f" {escape(str(m.get('at')))}</title></line>"
        )
    for k, (name, s) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        path: list[str] = []
        pen = "M"
        for x, v in zip(xs, s, strict=False):
            if v is None:
                pen = "M"
                continue
            path.append(f"{pen}{px(x):.1f},{py(v):.1f}")
            pen = "L"
        points = [(x, v) for x, v in zip(xs, s, strict=False) if v is not None]
        dots = "".join(
            f'<circle cx="{px(x):.1f}" cy="{py(v):.1f}" r="1.8" fill="{color}"/>'
            for x, v in points
        ) if len(points) <= 80 else ""  # fmt: skip
        parts.append(
            f'<path class="series" data-name="{escape(name)}" d="{" ".join(path)}"'
            f' fill="none" stroke="{color}" stroke-width="1.6"><title>{escape(name)}</title>'
            f"</path>{dots}"
        )
    legend_x = pad_l
    for k, (name, _) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        parts.append(
            f'<rect x="{legend_x}" y="{height - 10}" width="10" height="6" fill="{color}"/>'
            f'<text x="{legend_x + 13}" y="{height - 3}" class="lbl">{escape(name)}</text>'
        )
        legend_x += 16 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)
