"""The four pages (Models, a model, Drift, Events), each rendered from its JSON document.

Every page is one HTML document with inline SVG charts; ``app.js`` refreshes the ``<main>``
element every ``refresh_s`` seconds from the same URL (``?fragment=1``) and runs the actions.
"""

from __future__ import annotations

from functools import cache
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from dashboard.html import charts


def _figure(caption: str, chart: str) -> str:
    return f"<figure><figcaption>{escape(caption)}</figcaption>{chart}</figure>"


def _chip(name: str, selected: str | None, link: str) -> str:
    on = " on" if name == selected else ""
    return f"<a class='chip{on}' href='{link}feature={quote(name)}'>{escape(name)}</a>"


def _step_class(i: int, current: int | None) -> str:
    if i == current:
        return "on"
    return "done" if current is not None and i < current else ""


def _e(v: object) -> str:
    return escape("" if v is None else str(v))


def _pct(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{100 * v:.{digits}f}%"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _when(iso: object) -> str:
    text = "" if iso is None else str(iso)
    return f'<time datetime="{_e(text)}">{_e(text.replace("T", " ")[:19])}</time>'


@cache
def _style() -> str:
    """The style sheet, inline: a separate request would hold the first paint back."""
    return resources.files("dashboard.static").joinpath("style.css").read_text()


def pending(title: str) -> str:
    """``<main>`` while its figures are computed (``app.js`` fetches them at once)."""
    return f"<h1>{_e(title)}</h1><p class='muted loading'>computing the figures…</p>"


def layout(
    *,
    title: str,
    base: str,
    active: str,
    body: str,
    refresh_s: float,
    admin: bool,
    pending: bool = False,
) -> str:
    """The page shell: header with navigation and the admin token field, then ``body``
    (``pending``: a placeholder that ``app.js`` replaces with the figures)."""
    nav = "".join(
        f'<a href="{base}{href}" class="{"on" if key == active else ""}">{label}</a>'
        for key, href, label in (("models", "/", "Models"), ("events", "/events", "Events"))
    )
    token = (
        '<label class="token">admin token <input type="password" id="admin-token"'
        ' autocomplete="off" placeholder="for actions"></label>'
        if admin
        else '<span class="muted token">actions disabled (no admin token set)</span>'
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)} · mlgate</title>"
        "<link rel='icon' href='data:,'>"
        f"<style>{_style()}</style>"
        f"<script defer src='{base}/static/app.js'></script></head>"
        f"<body data-base='{_e(base)}' data-refresh-s='{refresh_s:g}'>"
        f"<header><b class='brand'>mlgate</b><nav>{nav}</nav>{token}</header>"
        f"<main id='main'{' data-pending=1' if pending else ''}>{body}</main>"
        "<dialog id='confirm'><form method='dialog'><h3>Confirm</h3><p id='confirm-text'></p>"
        "<menu><button value='cancel' id='confirm-cancel'>Cancel</button>"
        "<button value='ok' id='confirm-ok' class='danger'>Confirm</button></menu></form>"
        "</dialog><div id='toast' role='status'></div></body></html>"
    )


def _action(model: str, action: str, label: str, params: dict[str, Any] | None = None) -> str:
    import json

    data = escape(json.dumps(params or {}))
    return (
        f'<button class="act" data-model="{_e(model)}" data-action="{_e(action)}"'
        f' data-params="{data}">{_e(label)}</button>'
    )


# ----------------------------------------------------------------------------------- models


def _route_cell(route: dict[str, Any]) -> str:
    canary = route.get("canary")
    shadows = route.get("shadows") or []
    out = [f"<b>v{_e(route.get('champion'))}</b>" if route.get("champion") else "-"]
    if canary:
        out.append(
            f"<span class='tag canary'>canary v{canary['version']} {canary['weight']:g}%</span>"
        )
    out += [
        f"<span class='tag shadow'>shadow v{s['version']} {s['percent']:g}%</span>" for s in shadows
    ]
    return " ".join(out)


def _traffic_cells(routes: list[dict[str, Any]]) -> str:
    if not routes:
        return "<td class='muted' colspan='4'>no traffic in the window</td>"
    rows = [
        (
            f"{_e(r['route'])} v{r['version']}",
            f"{r['rate_per_s']:.2f}/s",
            _pct(r["error_rate"], 2),
            _ms(r["p99_ms"]),
        )
        for r in routes
    ]
    return "".join("<td>" + "<br>".join(row[i] for row in rows) + "</td>" for i in range(4))


def _drift_badge(drift: dict[str, Any] | None) -> str:
    if not drift:
        return "<span class='badge none'>no window</span>"
    share = drift.get("share_drifted")
    bad = drift.get("dataset_drift")
    cls = "bad" if bad else ("warn" if drift.get("n_drifted") else "ok")
    return (
        f"<span class='badge {cls}' title='window ending {_e(drift.get('end'))}, "
        f"{drift.get('n_drifted')} of {drift.get('n_features')} features drifted'>"
        f"{_pct(share, 0)} drifted</span>"
    )


def _gateway_cell(g: dict[str, Any]) -> str:
    if g.get("all_loaded") is None:
        return "<span class='muted'>no live gateway</span>"
    if g["all_loaded"]:
        return f"<span class='badge ok'>all {g['live']} on route</span>"
    why = ", ".join(g.get("behind") or []) or "; ".join(g.get("failed", {}).values())
    behind = len(g.get("behind") or [])
    return f"<span class='badge bad' title='{_e(why)}'>{behind} of {g['live']} behind</span>"


def models_body(doc: dict[str, Any], base: str) -> str:
    rows = []
    for m in doc["models"]:
        name = m["name"]
        link = f"{base}/models/{quote(name)}"
        alert = m.get("last_alert")
        run = m.get("last_run")
        rows.append(
            f"<tr data-model='{_e(name)}'><td><a href='{link}'>{_e(name)}</a></td>"
            f"<td>{_route_cell(m['route'])}</td>{_traffic_cells(m['routes'])}"
            f"<td><a href='{link}/drift'>{_drift_badge(m.get('drift'))}</a></td>"
            f"<td>{_e(alert['event_type']) + '<br>' + _when(alert['at']) if alert else '-'}</td>"
            f"<td>{_e(run['kind']) + '<br>' + _when(run['ts']) if run else '-'}</td>"
            f"<td>{_gateway_cell(m['gateways'])}</td></tr>"
        )
    note = f"<p class='note'>{_e(doc['monitor_note'])}</p>" if doc.get("monitor_note") else ""
    return (
        f"<h1>Models <small>{len(doc['models'])}</small></h1>{note}"
        f"<p class='muted'>traffic over the last {doc['window_s']:g} s · {_when(doc['at'])}</p>"
        "<table class='models'><thead><tr><th>model</th><th>route</th><th>route/version</th>"
        "<th>rate</th><th>errors</th><th>p99 ms</th><th>drift</th><th>last alert</th>"
        "<th>last retraining</th><th>gateways</th></tr></thead><tbody>"
        + ("".join(rows) or "<tr><td colspan='10'>no model registered</td></tr>")
        + "</tbody></table>"
    )


# ------------------------------------------------------------------------------------ model


def _lineage(lin: dict[str, Any]) -> str:
    metrics = ", ".join(f"{_e(k)} {v:.4g}" if isinstance(v, float) else f"{_e(k)} {_e(v)}"
                        for k, v in (lin.get("metrics") or {}).items())  # fmt: skip
    fp = str(lin.get("data_fingerprint") or "-")[:12]
    return (
        f"<td>{_e(lin.get('parent_version') or '-')}</td><td>{_e(lin.get('trigger') or '-')}</td>"
        f"<td><code>{_e(fp)}</code></td><td>{_e(lin.get('rows') or '-')}</td>"
        f"<td>{metrics or '-'}</td>"
    )


def _versions(doc: dict[str, Any]) -> str:
    name = doc["name"]
    rows = []
    for v in doc["versions"]:
        n = v["version"]
        acts = []
        if not v["roles"] or v["roles"] == ["previous champion"]:
            acts.append(_action(name, "shadow", "shadow", {"version": n, "percent": 100}))
        rows.append(
            f"<tr data-version='{n}'><td><input type='checkbox' class='pick' value='{n}'></td>"
            f"<td>v{n}</td><td>{_e(', '.join(v['roles']) or '-')}</td>"
            f"<td>{_when(v['created_at'])}</td><td>{_e(v['flavor'])}</td>{_lineage(v['lineage'])}"
            f"<td>{''.join(acts)}</td></tr>"
        )
    return (
        "<h2>Versions</h2><form class='diff' method='get'>"
        "<table class='versions'><thead><tr><th></th><th>version</th><th>route</th><th>created</th>"
        "<th>flavor</th><th>parent</th><th>trigger</th><th>data</th><th>rows</th><th>metrics</th>"
        "<th></th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        "<p>diff versions <input name='a' size='3' placeholder='a'> and"
        " <input name='b' size='3' placeholder='b'> <button>diff</button>"
        " <span class='muted'>(or tick two rows)</span></p></form>"
    )


def diff_body(diff: dict[str, Any] | None) -> str:
    if not diff:
        return ""

    def table(title: str, items: list[dict[str, Any]], extra: str) -> str:
        rows = "".join(
            f"<tr class='{'changed' if it.get('changed') or it.get('delta') else ''}'>"
            f"<td>{_e(it['name'])}</td><td>{_fig(it['a'])}</td><td>{_fig(it['b'])}</td>"
            f"<td>{_fig(it.get(extra))}</td></tr>"
            for it in items
        )
        return (
            f"<h3>{title}</h3><table class='difftable'><tr><th></th><th>v{diff['a']}</th>"
            f"<th>v{diff['b']}</th><th>{extra}</th></tr>"
            f"{rows or '<tr><td colspan=4>none</td></tr>'}</table>"
        )

    return (
        f"<section class='diff' id='diff'><h2>v{diff['a']} vs v{diff['b']}</h2>"
        + table("metrics", diff["metrics"], "delta")
        + table("parameters", diff["params"], "changed")
        + table("lineage", diff["lineage"], "changed")
        + "</section>"
    )


def _rollout(doc: dict[str, Any]) -> str:
    name = doc["name"]
    route = doc["route"]
    ro = doc.get("rollout")
    acts = [_action(name, "rollback", "roll back")]
    if route.get("canary"):
        acts.insert(0, _action(name, "promote", "promote canary"))
        acts.append(
            "<span class='weight'><input type='number' min='0' max='100' step='1'"
            f" value='{route['canary']['weight']:g}' id='weight-{_e(name)}' size='4'>% "
            + _action(name, "weight", "set canary weight", {"input": f"weight-{name}"})
            + "</span>"
        )
    for s in route.get("shadows") or []:
        acts.append(
            _action(name, "shadow-off", f"stop shadow v{s['version']}", {"version": s["version"]})
        )
    acts.append(_action(name, "retrain", "start retraining run"))
    head = f"<h2>Route <small>generation {route.get('generation')}</small></h2>"
    head += f"<p>{_route_cell(route)}</p><p class='actions'>{''.join(acts)}</p>"
    if not ro:
        return head + "<p class='muted'>no rollout in progress</p>"
    if not ro.get("active"):
        title = f"Last rollout <small>{_e(ro.get('outcome'))}</small>"
    else:
        title = f"Rollout in progress <small>{_e(ro.get('step_label') or '')}</small>"
    steps = ro.get("steps")
    plan = ""
    if steps:
        cur = ro.get("step")
        plan = (
            "<ol class='plan'>"
            + "".join(f"<li class='{_step_class(i, cur)}'>{w:g}%</li>" for i, w in enumerate(steps))
            + "</ol>"
        )
    checks = ro.get("checks") or []
    check_table = (
        "<table class='checks'><tr><th>check</th><th>outcome</th><th>n</th><th>statistic</th>"
        "<th>p</th><th>interval</th><th>effect</th><th>threshold</th><th>reason</th></tr>"
        + "".join(_check_row(c) for c in checks)
        + "</table>"
        if checks
        else "<p class='muted'>no analysis recorded yet</p>"
    )
    analyses = "".join(
        f"<li>{_when(a['ts'])} <b>{_e(a['kind'])}</b> {_e(_short(a.get('detail')))}</li>"
        for a in (ro.get("analyses") or [])[-8:][::-1]
    )
    return (
        head
        + f"<h3>{title}</h3>"
        + f"<p>started {_when(ro.get('started_at'))}</p>{plan}{check_table}"
        + (f"<ul class='analyses'>{analyses}</ul>" if analyses else "")
    )


def _fig(v: Any) -> str:
    if isinstance(v, str) and len(v) > 32:  # a fingerprint: its head, the whole on hover
        return f"<span title='{_e(v)}'>{_e(v[:16])}…</span>"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | tuple) and len(v) == 2:
        return f"[{_fig(v[0])}, {_fig(v[1])}]"
    return _e("-" if v is None else v)


def _check_row(c: dict[str, Any]) -> str:
    """One analysis check: its outcome and the figures behind it."""
    n = _fig(c.get("n"))
    if c.get("n_needed"):
        n += f" / {_fig(c.get('n_needed'))}"
    outcome = str(c.get("outcome") or c.get("verdict") or "")
    cls = {"pass": "ok", "fail": "bad", "inconclusive": "warn"}.get(outcome, "none")
    cells = [
        _e(c.get("check") or c.get("name")),
        f"<span class='badge {cls}'>{_e(outcome or '-')}</span>",
        n,
        _fig(c.get("statistic", c.get("value"))),
        _fig(c.get("p_value")),
        _fig(c.get("interval")),
        _fig(c.get("effect")),
        _fig(c.get("threshold")),
        _e(c.get("reason") or ""),
    ]
    return "<tr>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>"


def _short(detail: Any) -> str:
    if not isinstance(detail, dict):
        return str(detail)
    items = [f"{k}={v}" for k, v in detail.items() if k not in ("checks", "plan")]
    return ", ".join(items)[:200]


def _figures(doc: dict[str, Any]) -> str:
    agreement = {(a["route"], a["version"]): a for a in doc.get("agreement") or []}
    rows = "".join(
        f"<tr><td>{_e(r['route'])}</td><td>v{r['version']}</td><td>{r['requests']}</td>"
        f"<td>{r['rate_per_s']:.2f}/s</td><td>{_pct(r['error_rate'], 2)}</td>"
        f"<td>{_ms(r['p50_ms'])}</td><td>{_ms(r['p99_ms'])}</td>"
        f"<td>{_agree(agreement.get((r['route'], r['version'])))}</td></tr>"
        for r in doc["routes"]
    )
    return (
        f"<h2>Traffic <small>last {doc['window_s']:g} s</small></h2>"
        "<table class='routes'><thead><tr><th>route</th><th>version</th><th>requests</th>"
        "<th>rate</th><th>error rate</th><th>p50 ms</th><th>p99 ms</th><th>agreement</th></tr>"
        f"</thead><tbody>{rows or '<tr><td colspan=8>no traffic in the window</td></tr>'}"
        "</tbody></table>"
    )


def _agree(a: dict[str, Any] | None) -> str:
    if not a or not a.get("compared"):
        return "-"
    return f"{_pct(a['agreement'])} of {a['compared']}"


def _series(doc: dict[str, Any], markers: list[dict[str, Any]]) -> str:
    s = doc["series"]
    xs = s["starts"]
    routes = s.get("routes") or {}
    bucket = s.get("bucket_s") or 1
    rate = [(r, [n / bucket for n in v["requests"]]) for r, v in routes.items()]
    p99 = [(r, v["p99_ms"]) for r, v in routes.items()]
    agree = [(f"{a['route']} v{a['version']}", a["series"]) for a in doc.get("agreement") or []]
    return (
        "<h2>Over time</h2><div class='charts'>"
        + _figure("requests/s per route", charts.lines(xs, rate, markers=markers, label="rate"))
        + _figure("p99 latency (ms) per route", charts.lines(xs, p99, markers=markers, label="p99"))
        + _figure("agreement with the champion", charts.lines(xs, agree, label="agreement"))
        + "</div>"
    )


def _run_item(r: dict[str, Any]) -> str:
    if "run_id" not in r:  # an audit-trail event
        return f"<li>{_when(r['ts'])} <b>{_e(r['kind'])}</b> {_e(_short(r.get('detail')))}</li>"
    trigger = r.get("trigger") or {}
    version = f" → v{r['version']}" if r.get("version") else ""
    rows = ", ".join(f"{k} {v}" for k, v in (r.get("rows") or {}).items())
    return (
        f"<li>{_when(r['ts'])} <b>{_e(r['status'])}</b>{version} · trigger "
        f"{_e(trigger.get('kind'))} · {_e(rows)} · {_e(r.get('decision') or '')}"
        f" <small>{_e(r['run_id'])}</small></li>"
    )


def model_body(doc: dict[str, Any], base: str, diff: dict[str, Any] | None) -> str:
    name = doc["name"]
    markers = [{"kind": "run", "type": e["kind"], "at": e["ts"]} for e in doc.get("runs") or []]
    gw = doc["gateways"]
    gateways = "".join(
        f"<tr><td>{_e(g['gateway_id'])}</td><td>{g['generation']}</td>"
        f"<td>{_e(', '.join(f'v{k}:{v}' for k, v in sorted(g['versions'].items())))}</td>"
        f"<td>{g['age_s']}</td></tr>"
        for g in gw["states"]
    )
    runs = "".join(_run_item(r) for r in doc.get("runs") or [])
    events = "".join(
        f"<li>{_when(e['ts'])} <b>{_e(e['kind'])}</b>"
        f"{' v' + str(e['version']) if e.get('version') else ''}"
        f" {_e(_short(e.get('detail')))}{' by ' + _e(e['actor']) if e.get('actor') else ''}</li>"
        for e in doc.get("events") or []
    )
    return (
        f"<h1>{_e(name)} <small><a href='{base}/models/{quote(name)}/drift'>drift</a> · "
        f"<a href='{base}/events?model={quote(name)}'>events</a></small></h1>"
        + _rollout(doc)
        + diff_body(diff)
        + _figures(doc)
        + _series(doc, markers)
        + _versions(doc)
        + "<h2>Gateways</h2>"
        + (
            "<table><tr><th>gateway</th><th>generation</th><th>versions</th><th>age s</th></tr>"
            + gateways
            + "</table>"
            if gateways
            else "<p class='muted'>no live gateway has reported</p>"
        )
        + "<h2>Retraining runs</h2>"
        + (f"<ul>{runs}</ul>" if runs else "<p class=muted>none</p>")
        + f"<h2>Recent events</h2><ul class='events'>{events}</ul>"
    )


# ------------------------------------------------------------------------------------ drift


def drift_body(doc: dict[str, Any], base: str) -> str:
    name = doc["name"]
    head = f"<h1>Drift · <a href='{base}/models/{quote(name)}'>{_e(name)}</a></h1>"
    if not doc.get("grid"):
        return head + f"<p class='note'>{_e(doc.get('note'))}</p>"
    grid = doc["grid"]
    params = {"version": doc["version"], "route": doc["route"], "metric": doc["metric"]}
    link = f"{base}/models/{quote(name)}/drift?{urlencode(params)}&"
    keys = "".join(
        f"<option value='{k['version']}|{_e(k['route'])}'"
        f"{' selected' if (k['version'], k['route']) == (doc['version'], doc['route']) else ''}>"
        f"v{k['version']} {_e(k['route'])} ({k['windows']} windows)</option>"
        for k in doc["keys"]
    )
    from monitor.report.overview import GRID_METRICS

    metrics = "".join(
        f"<option{' selected' if m == doc['metric'] else ''}>{m}</option>" for m in GRID_METRICS
    )
    controls = (
        "<form class='controls' method='get' id='drift-controls'>"
        f"<label>version/route <select name='key'>{keys}</select></label> "
        f"<label>statistic <select name='metric'>{metrics}</select></label>"
        " <button>show</button></form>"
    )
    overview = doc["overview"]
    selected = next(
        (c["id"] for c in overview["windows"]
         if c["first_id"] <= (doc.get("window") or -1) <= c["id"]),
        None,
    )  # fmt: skip
    heat = charts.heatmap(
        overview, markers=doc.get("markers") or [], selected_window=selected, link=link,
        max_columns=max(len(overview["windows"]), 1),
    )  # fmt: skip
    series = doc["series"]
    xs = series["end_s"]
    share = [("share drifted", series["share_drifted"])]
    threshold = series["share_threshold"]
    pred = [("prediction PSI", series["prediction_psi"])]
    perf = list(series["performance"].items())[:3]
    markers = doc.get("markers") or []
    feature = doc.get("feature")
    dist = (doc.get("distributions") or {}).get(feature or "")
    window = doc.get("window_info")
    if dist:
        kind = dist.get("kind") or ""
        detail = (
            f"<h2>{_e(feature)} <small>{_e(kind)} · window {window['seq'] if window else ''} "
            f"ending {_when(window['end'] if window else None)}</small></h2>"
            f"<div class='legend'><span style='background:{charts.REF_COLOR}'></span>reference"
            f"<span style='background:{charts.CUR_COLOR}'></span>current window</div>"
            + charts.bars(dist["labels"], dist["ref"], dist["cur"])
            + f"<p>null share: reference {_pct(dist['ref_null_share'], 2)}, current "
            f"{_pct(dist['null_share'], 2)} · unseen share {_pct(dist['unseen_share'], 2)}</p>"
        )
    else:
        detail = "<p class='muted'>pick a cell of the heat map</p>"
    options = "".join(
        _chip(f["name"], feature, f"{escape(link)}window={doc.get('window')}&amp;")
        for f in grid["features"]
    ) + "".join(
        _chip(c, feature, f"{escape(link)}window={doc.get('window')}&amp;")
        for c in (doc.get("distributions") or {})
        if c.startswith("@")
    )
    return (
        head + controls + f"<h2>{_e(doc['metric'])} per window and feature"
        f" <small>v{doc['version']} {_e(doc['route'])}, {grid['total_windows']} windows"
        + (f" ({overview['size']} a column, the worst shown)" if overview["size"] > 1 else "")
        + "; outlined: drifted; <span class='runmark'>|</span> runs,"
        " <span class='alertmark'>|</span> alerts</small></h2>"
        + heat
        + f"<div class='chips'>{options}</div>"
        + detail
        + "<div class='charts'>"
        + _figure(
            "share of drifted features",
            charts.lines(xs, share, markers=markers, threshold=threshold, label="share drifted"),
        )
        + _figure("prediction drift (PSI)", charts.lines(xs, pred, markers=markers, label="PSI"))
        + _figure("labelled metric", charts.lines(xs, perf, markers=markers, label="metric"))
        + "</div>"
    )


# ----------------------------------------------------------------------------------- events


def events_body(doc: dict[str, Any], base: str) -> str:
    models = "".join(
        f"<option{' selected' if m == doc.get('model') else ''}>{_e(m)}</option>"
        for m in doc["models"]
    )
    kinds = "".join(
        f"<option{' selected' if k == doc.get('kind') else ''}>{_e(k)}</option>"
        for k in doc["kinds"]
    )
    controls = (
        "<form class='controls' method='get'>"
        f"<label>model <select name='model'><option value=''>all</option>{models}</select></label> "
        f"<label>type <select name='kind'><option value=''>all</option>{kinds}</select></label> "
        "<button>filter</button></form>"
    )
    endpoints = "".join(
        f"<tr class='{_e(e['state'])}'><td>{_e(e['endpoint'])}</td><td><span class='badge "
        f"{'bad' if e['state'] == 'failing' else 'ok'}'>{_e(e['state'])}</span></td>"
        f"<td>{e['delivered']}</td><td>{e['pending']}</td><td>{e['failed']}</td>"
        f"<td>{e['suppressed']}</td><td>{_e(e['last_error'] or '-')}</td></tr>"
        for e in doc["endpoints"]
    )
    outbox = "".join(
        f"<tr><td>{_when(m['created_at'])}</td><td>{_e(m['event_type'])}</td><td>{_e(m['model'])}</td>"
        f"<td>{_e(m['endpoint'])}</td><td>{_e(m['status'])}</td><td>{m['attempts']}</td>"
        f"<td>{_e(m['last_error'] or '')}</td></tr>"
        for m in doc["outbox"][:100]
    )
    trail = "".join(
        f"<tr><td>{_when(e['ts'])}</td>"
        f"<td><a href='{base}/models/{quote(e['model'])}'>{_e(e['model'])}</a></td>"
        f"<td>{_e(e['kind'])}</td><td>{_e(e.get('version') or '')}</td>"
        f"<td>{_e(e.get('generation') or '')}</td>"
        f"<td>{_e(e.get('actor') or '')}</td><td>{_e(_short(e.get('detail')))}</td></tr>"
        for e in doc["events"]
    )
    note = f"<p class='note'>{_e(doc['monitor_note'])}</p>" if doc.get("monitor_note") else ""
    return (
        "<h1>Events</h1>"
        + controls
        + note
        + "<h2>Alert endpoints</h2>"
        + (
            "<table class='endpoints'><tr><th>endpoint</th><th>state</th><th>delivered</th>"
            "<th>pending</th>"
            f"<th>failed</th><th>suppressed</th><th>last error</th></tr>{endpoints}</table>"
            if endpoints
            else "<p class='muted'>no alert queued</p>"
        )
        + "<h2>Alert outbox</h2>"
        + (
            "<table class='outbox'><tr><th>queued</th><th>type</th><th>model</th><th>endpoint</th>"
            f"<th>status</th><th>attempts</th><th>last error</th></tr>{outbox}</table>"
            if outbox
            else "<p class='muted'>no message</p>"
        )
        + f"<h2>Audit trail <small>{len(doc['events'])} of {doc['total']}</small></h2>"
        + "<table class='trail'><tr><th>time</th><th>model</th><th>type</th><th>version</th>"
        + f"<th>generation</th><th>actor</th><th>detail</th></tr>{trail}</table>"
    )
