"""The HTML report: one self-contained file, reference vs current drawn side by side.

No external assets: inline CSS, SVG drawn here and a few lines of script (click a heading of
the summary to sort it), so the file can be mailed, attached to a ticket or opened offline.
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
.ok{background:#3f9142}.bad{background:#d64545}.warn{background:#de911d}
.why{color:#52606d;font-size:12px;margin:2px 0 6px} th{cursor:pointer}
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
    """Grouped bars: reference (grey) and current (blue) share of each bin.

    Bin labels are drawn whole, slanted up to the left from their bar, with the bottom and
    left margins sized from the longest label, so none is cut off.
    """
    n = max(1, len(ref))
    top = max([*ref, *cur, 1e-9])
    texts = [lab if len(lab) <= 24 else lab[:23] + "…" for lab in labels]
    longest = max((len(t) for t in texts), default=4)
    pad_b = int(12 + longest * 3.6)  # 8 px font: ~5 px a character, at 45°: ~3.6 px down
    pad_l = max(30, min(140, int(len(texts[0]) * 3.6) if texts else 30))
    height = max(height, pad_b + 110)
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
        lx, ly = x0 + bar, 8 + plot_h + 8
        parts.append(
            f'<text x="{lx:.1f}" y="{ly}" font-size="8" fill="#52606d" text-anchor="end"'
            f' transform="rotate(-45 {lx:.1f} {ly})">{escape(texts[i])}</text>'
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
    badge = _badge(f)
    chart = "<p>no distribution</p>"
    if dist is not None:
        labels = col.labels() if col is not None else [str(b) for b in dist["bins"][:-1]]
        labels = [*labels, "(null)"]
        if len(labels) != len(dist["ref"]):
            labels = [str(b) for b in dist["bins"]]
        chart = bars_svg(labels, dist["ref"], dist["cur"])
    return (
        f'<div class="card{" drift" if drift else ""}"><h3>{escape(f["name"])}'
        f" <small>({escape(str(f.get('kind')))})</small> {badge}</h3>"
        f"<p class='why'>{escape(str(f.get('reason') or ''))}</p>{chart}"
        f"{_figures_table(f)}</div>"
    )


def render_html(
    report: dict[str, Any], store: MonitorStore, *, history: dict[str, Any] | None = None
) -> str:
    """One HTML page for a ``build_report`` document (latest window), explained by
    ``verdicts.annotate``; ``history`` (the ``window="all"`` document) adds the view of every
    window over time."""
    version = report.get("version")
    title = f"mlgate drift report — {report['model']}" + (
        f" v{version}" if version is not None else ""
    )
    head = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>"
    )
    window = report.get("window")
    if not window:
        note = escape(report.get("note") or "no complete window")
        return head + f"<p>{note}</p>{_problems(report)}</body></html>"
    dataset = report.get("dataset_drift")
    rules = report.get("rules") or {}
    sub = (
        f"<div class='sub'>route {escape(str(report.get('route')))} · window"
        f" {window['seq']} · {window['start']} → {window['end']} · {window['rows']} rows ·"
        f" share drifted {_fmt(report.get('share_drifted'))} · dataset drift"
        f" <span class='badge {'bad' if dataset else 'ok'}'>{_fmt(dataset)}</span>"
        + (
            f" · a column drifts after {rules['consecutive']} consecutive windows over a"
            f" threshold, in windows of at least {rules['min_rows']} rows"
            if rules
            else ""
        )
        + "</div>"
        f"<div class='legend'>legend:<span style='background:{REF_COLOR}'></span>reference"
        f"<span style='background:{CUR_COLOR}'></span>current window</div>"
    )
    dists = distributions(store, int(window["id"]))
    profiles = _profiles(store, int(window["id"]))
    cards = [_card(f, dists.get(f["name"]), profiles.get(f["name"])) for f in report["features"]]
    pred_columns = [
        {**c, "name": c["name"].lstrip("@")}
        for c in (report.get("prediction") or {}).get("columns", [])
    ]
    pred_cards = [
        _card(c, dists.get("@" + c["name"], dists.get(c["name"])),
              profiles.get("@" + c["name"], profiles.get(c["name"])))
        for c in pred_columns
    ]  # fmt: skip
    perf = report.get("performance") or {}
    perf_html = "".join(
        f"<tr><td class='n'>{escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in perf.items()
    )
    return (
        head
        + sub
        + "<h2>Summary</h2>"
        + summary_table([*report["features"], *pred_columns])
        + (over_time(history) if history else "")
        + "<h2>Features</h2><div class='grid'>"
        + "".join(cards)
        + "</div>"
        + "<h2>Predictions</h2><div class='grid'>"
        + "".join(pred_cards)
        + "</div>"
        + f"<h2>Performance</h2><table>{perf_html}</table>"
        + _problems(report)
        + SORT_SCRIPT
        + "</body></html>"
    )


def _badge(f: dict[str, Any]) -> str:
    verdict = f.get("verdict") or ("drifted" if f.get("drifted") else "stable")
    cls = {"drifted": "bad", "watch": "warn"}.get(verdict, "ok")
    return f'<span class="badge {cls}">{escape(verdict)}</span>'


def summary_table(columns: list[dict[str, Any]]) -> str:
    """Every column in one table, highest drift score first; click a heading to re-sort."""
    ordered = sorted(columns, key=lambda c: -(c.get("score") or 0.0))
    rows = []
    for c in ordered:
        score = c.get("score")
        rows.append(
            f"<tr><td class='n'>{escape(str(c['name']))}</td>"
            f"<td class='n'>{escape(str(c.get('kind')))}</td>"
            f"<td class='n' data-v='{_VERDICT_ORDER.get(str(c.get('verdict')), 0)}'>"
            f"{_badge(c)}</td>"
            f"<td data-v='{score if score is not None else -1}'"
            f"{' class=hit' if (score or 0) >= 1 else ''}>{_fmt(score)}</td>"
            f"<td class='n'>{escape(str(c.get('decided_by') or '–'))}</td>"
            f"<td>{c.get('streak', 0)}</td>"
            f"<td class='n why'>{escape(str(c.get('reason') or ''))}</td></tr>"
        )
    return (
        "<table class='summary sortable'><thead><tr><th class='n'>column</th>"
        "<th class='n'>kind</th><th class='n'>verdict</th><th>drift score</th>"
        "<th class='n'>decided by</th><th>streak</th><th class='n'>why</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        "<p class='sub'>drift score: the largest of PSI, normalized Wasserstein and"
        " Jensen-Shannon divided by its threshold (1 or more crosses it)</p>"
    )


_VERDICT_ORDER = {"drifted": 2, "watch": 1, "stable": 0}


def over_time(history: dict[str, Any]) -> str:
    """A window × column heat map of the drift score, drifted cells outlined."""
    windows = history.get("windows") or []
    if not windows:
        return ""
    names: list[str] = []
    for w in windows:
        for f in w.get("features", []):
            if f["name"] not in names:
                names.append(f["name"])
    cell, pad_l, pad_t = 14, max(60, 6 * max(len(n) for n in names)), 28
    width = pad_l + cell * len(windows) + 10
    height = pad_t + cell * len(names) + 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        ' role="img" aria-label="drift score per window and column">'
    ]
    for j, w in enumerate(windows):
        x = pad_l + j * cell
        if j % max(1, len(windows) // 12) == 0:
            parts.append(
                f'<text x="{x + cell / 2:.0f}" y="{pad_t - 6}" font-size="8" fill="#52606d"'
                f' text-anchor="middle">{w["window"]["seq"]}</text>'
            )
        by_name = {f["name"]: f for f in w.get("features", [])}
        for i, name in enumerate(names):
            f = by_name.get(name)
            y = pad_t + i * cell
            if f is None:
                continue
            s = f.get("score")
            stroke = ' stroke="#1f2933" stroke-width="1.5"' if f.get("drifted") else ""
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}"'
                f' fill="{_heat(s)}"{stroke}><title>{escape(name)} window'
                f" {w['window']['seq']} ({w['window']['end']}): score {_fmt(s)},"
                f" {escape(str(f.get('verdict')))}</title></rect>"
            )
    for i, name in enumerate(names):
        parts.append(
            f'<text x="{pad_l - 4}" y="{pad_t + i * cell + cell - 4}" font-size="9"'
            f' fill="#1f2933" text-anchor="end">{escape(name)}</text>'
        )
    parts.append(
        f'<text x="{pad_l}" y="{height - 6}" font-size="9" fill="#52606d">window →</text></svg>'
    )
    return (
        "<h2>Over time</h2><div class='heat'>"
        + "".join(parts)
        + "<p class='sub'>one cell per window (columns) and column (rows); colour: drift score,"
        " green at 0, amber at the threshold (1), red at 2 and more; outlined: drifted</p></div>"
    )


def _heat(score: float | None) -> str:
    """Green (0) → amber (1, the threshold) → red (2 and more); grey when unmeasured."""
    if score is None:
        return "#e4e7eb"
    s = max(0.0, min(2.0, float(score)))
    low, mid, high = (0x3F, 0x91, 0x42), (0xF0, 0xB4, 0x29), (0xD6, 0x45, 0x45)
    a, b, t = (low, mid, s) if s <= 1 else (mid, high, s - 1)
    r, g, bl = (round(a[k] + (b[k] - a[k]) * t) for k in range(3))
    return f"#{r:02x}{g:02x}{bl:02x}"


SORT_SCRIPT = """<script>
for (const table of document.querySelectorAll('table.sortable')) {
  table.querySelectorAll('th').forEach((th, col) => th.addEventListener('click', () => {
    const body = table.tBodies[0], rows = Array.from(body.rows);
    const key = r => { const c = r.cells[col]; return c.dataset.v !== undefined ?
      parseFloat(c.dataset.v) : c.textContent; };
    const asc = th.dataset.asc !== '1'; th.dataset.asc = asc ? '1' : '0';
    rows.sort((a, b) => { const x = key(a), y = key(b);
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); });
    rows.forEach(r => body.appendChild(r));
  }));
}
</script>"""


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
