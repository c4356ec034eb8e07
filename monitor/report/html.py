"""The HTML report: one self-contained file, reference vs current drawn side by side.

No scripts, no external assets: inline CSS and SVG bars drawn here, so the file can be
mailed, attached to a ticket or opened offline.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from monitor.compute.decide import FEATURE_FIELDS
from monitor.report.build import distributions

if TYPE_CHECKING:
    from monitor.stats.profile import ColumnProfile
    from monitor.store import MonitorStore

REF_COLOR = "#9aa5b1"
CUR_COLOR = "#2f6fdf"
DRIFT_COLOR = "#d64545"

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2933}
h1{font-size:22px;margin:0 0 4px} .sub{color:#52606d;margin-bottom:16px}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;color:#fff}
.ok{background:#3f9142}.bad{background:#d64545}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:16px}
.card{border:1px solid #d9e2ec;border-radius:8px;padding:12px}
.card.drift{border-color:#d64545;box-shadow:0 0 0 1px #d64545 inset}
table{border-collapse:collapse;font-size:12px} td,th{padding:2px 8px;text-align:right}
th{color:#52606d;font-weight:500} td.n{text-align:left}
.hit{color:#d64545;font-weight:600} .legend span{display:inline-block;width:10px;height:10px;
margin:0 4px 0 12px}
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"
    return escape(str(v))


def bars_svg(
    labels: list[str], ref: list[float], cur: list[float], *, width: int = 440, height: int = 175
) -> str:
    """Grouped bars: reference (grey) and current (blue) share of each bin."""
    n = max(1, len(ref))
    top = max([*ref, *cur, 1e-9])
    pad_b, pad_l = 62, 30
    plot_h = height - pad_b - 8
    slot = (width - pad_l) / n
    bar = max(1.0, slot * 0.38)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' role="img" aria-label="reference vs current">'
    ]
    parts.append(
        f'<line x1="{pad_l}" y1="{8 + plot_h}" x2="{width}" y2="{8 + plot_h}" stroke="#bcccdc"/>'
    )
    parts.append(f'<text x="2" y="14" font-size="9" fill="#52606d">{top:.0%}</text>')
    for i in range(n):
        x0 = pad_l + i * slot + slot * 0.1
        for j, (vals, color) in enumerate(((ref, REF_COLOR), (cur, CUR_COLOR))):
            h = plot_h * (vals[i] / top)
            parts.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{8 + plot_h - h:.1f}" width="{bar:.1f}"'
                f' height="{h:.1f}" fill="{color}"><title>{escape(labels[i])}:'
                f" {'reference' if j == 0 else 'current'} {vals[i]:.1%}</title></rect>"
            )
        label = escape(labels[i][:14])
        lx, ly = x0 + bar, 8 + plot_h + 6
        parts.append(
            f'<text x="{lx:.1f}" y="{ly}" font-size="8" fill="#52606d"'
            f' transform="rotate(45 {lx:.1f} {ly})">{label}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _figures_table(f: dict[str, Any]) -> str:
    rows = []
    for key in FEATURE_FIELDS:
        if f.get(key) is None:
            continue
        thr = (f.get("thresholds") or {}).get(key)
        hit = (f.get("signals") or {}).get(key)
        cls = ' class="hit"' if hit else ""
        rows.append(
            f'<tr><td class="n">{key}</td><td{cls}>{_fmt(f.get(key))}</td><td>{_fmt(thr)}</td></tr>'
        )
    return (
        '<table><tr><th class="n">statistic</th><th>figure</th><th>threshold</th></tr>'
        + "".join(rows)
        + "</table>"
    )


def _card(f: dict[str, Any], dist: dict[str, Any] | None, col: ColumnProfile | None) -> str:
    drift = bool(f.get("drifted"))
    badge = (
        '<span class="badge bad">drifted</span>'
        if drift
        else '<span class="badge ok">stable</span>'
    )
    chart = "<p>no distribution</p>"
    if dist is not None:
        labels = col.labels() if col is not None else [str(b) for b in dist["bins"][:-1]]
        labels = [*labels, "(null)"]
        if len(labels) != len(dist["ref"]):
            labels = [str(b) for b in dist["bins"]]
        chart = bars_svg(labels, dist["ref"], dist["cur"])
    return (
        f'<div class="card{" drift" if drift else ""}"><h3>{escape(f["name"])}'
        f" <small>({escape(str(f.get('kind')))})</small> {badge}</h3>{chart}"
        f"{_figures_table(f)}</div>"
    )


def render_html(report: dict[str, Any], store: MonitorStore) -> str:
    """One HTML page for a ``build_report`` document (latest window)."""
    title = f"mlgate drift report — {report['model']} v{report.get('version')}"
    head = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>"
    )
    window = report.get("window")
    if not window:
        note = escape(report.get("note") or "no complete window")
        return head + f"<p>{note}</p>{_problems(report)}</body></html>"
    dataset = report.get("dataset_drift")
    sub = (
        f"<div class='sub'>route {escape(str(report.get('route')))} · window"
        f" {window['seq']} · {window['start']} → {window['end']} · {window['rows']} rows ·"
        f" share drifted {_fmt(report.get('share_drifted'))} · dataset drift"
        f" <span class='badge {'bad' if dataset else 'ok'}'>{_fmt(dataset)}</span></div>"
        f"<div class='legend'>legend:<span style='background:{REF_COLOR}'></span>reference"
        f"<span style='background:{CUR_COLOR}'></span>current window</div>"
    )
    dists = distributions(store, int(window["id"]))
    profiles = _profiles(store, int(window["id"]))
    cards = [_card(f, dists.get(f["name"]), profiles.get(f["name"])) for f in report["features"]]
    pred_cards = [
        _card({**c, "name": c["name"].lstrip("@")}, dists.get(c["name"]), profiles.get(c["name"]))
        for c in (report.get("prediction") or {}).get("columns", [])
    ]
    perf = report.get("performance") or {}
    perf_html = "".join(
        f"<tr><td class='n'>{escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in perf.items()
    )
    return (
        head
        + sub
        + "<h2>Features</h2><div class='grid'>"
        + "".join(cards)
        + "</div>"
        + "<h2>Predictions</h2><div class='grid'>"
        + "".join(pred_cards)
        + "</div>"
        + f"<h2>Performance</h2><table>{perf_html}</table>"
        + _problems(report)
        + "</body></html>"
    )


def _problems(report: dict[str, Any]) -> str:
    probs = report.get("problems") or {}
    if not probs.get("total"):
        return "<h2>Problems</h2><p>none</p>"
    items = "".join(
        f"<li><b>{escape(p['kind'])}</b> {escape(p['detail'])}</li>"
        for p in probs.get("recent", [])
    )
    return f"<h2>Problems ({probs['total']})</h2><ul>{items}</ul>"


def _profiles(store: MonitorStore, window_id: int) -> dict[str, ColumnProfile]:
    out: dict[str, ColumnProfile] = {}
    for pid in store.window_profile_ids(window_id):
        prof = store.load_profile(pid)
        for col in prof.columns if prof else []:
            out[col.name] = col
    return out
