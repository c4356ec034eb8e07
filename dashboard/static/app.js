// mlgate dashboard: live refresh of <main> and the confirm-then-act flow. No dependencies.
"use strict";
(function () {
  const base = document.body.dataset.base || "";
  const refreshS = parseFloat(document.body.dataset.refreshS || "10");
  const tokenInput = document.getElementById("admin-token");
  const dialog = document.getElementById("confirm");
  let busy = false;

  if (tokenInput) {
    tokenInput.value = sessionStorage.getItem("mlgate-admin-token") || "";
    tokenInput.addEventListener("change", () =>
      sessionStorage.setItem("mlgate-admin-token", tokenInput.value));
  }

  function toast(text, error) {
    const el = document.getElementById("toast");
    el.textContent = text;
    el.className = "show" + (error ? " error" : "");
    setTimeout(() => { el.className = ""; }, 6000);
  }

  async function refresh(force) {
    if (!force && (busy || document.hidden || (dialog && dialog.open))) return;
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    const main = document.getElementById("main");
    try {
      const r = await fetch(url, { headers: { "Accept": "text/html" } });
      if (r.ok) {
        main.innerHTML = await r.text();
        document.body.dataset.refreshedAt = new Date().toISOString();
      } else if (main.dataset.pending) {
        main.innerHTML = await r.text();  // the error page's message, in place of the figures
      }
    } catch (e) { /* the next tick retries */ }
    if (main.dataset.pending) {
      delete main.dataset.pending;
      performance.mark("mlgate-filled");
    }
  }
  if (refreshS > 0) setInterval(refresh, refreshS * 1000);
  // the frame came before its figures (none computed yet): fetch them now
  if (document.getElementById("main").dataset.pending) refresh(true);

  function confirmText(text) {
    return new Promise((resolve) => {
      document.getElementById("confirm-text").textContent = text;
      dialog.returnValue = "";
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
    });
  }

  async function post(model, action, body) {
    const token = tokenInput ? tokenInput.value : "";
    const r = await fetch(`${base}/api/models/${encodeURIComponent(model)}/actions/${action}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token },
      body: JSON.stringify(body),
    });
    let doc = {};
    try { doc = await r.json(); } catch (e) { doc = { error: r.statusText }; }
    return { ok: r.ok, status: r.status, doc };
  }

  async function act(button) {
    const model = button.dataset.model;
    const action = button.dataset.action;
    const params = JSON.parse(button.dataset.params || "{}");
    if (params.input) {
      params.weight = parseFloat(document.getElementById(params.input).value);
      delete params.input;
    }
    busy = true;
    try {
      const preview = await post(model, action, params);
      if (!preview.ok) { toast(preview.doc.error || `refused (${preview.status})`, true); return; }
      if (!(await confirmText(preview.doc.summary))) { toast("cancelled"); return; }
      const done = await post(model, action,
        Object.assign({}, params, { confirm: true, generation: preview.doc.generation }));
      if (!done.ok) { toast(done.doc.error || `refused (${done.status})`, true); return; }
      toast(done.doc.started ? "started: " + preview.doc.summary : "done: " + preview.doc.summary);
    } finally {
      busy = false;
    }
    refresh();
  }

  document.addEventListener("click", (ev) => {
    const button = ev.target.closest("button.act");
    if (button) { ev.preventDefault(); act(button); }
  });

  // the version table: ticking two rows fills the diff form
  document.addEventListener("change", (ev) => {
    if (!ev.target.matches("input.pick")) return;
    const picked = [...document.querySelectorAll("input.pick:checked")].map((i) => i.value);
    const form = document.querySelector("form.diff");
    if (form && picked.length === 2) {
      form.elements.a.value = picked[1]; form.elements.b.value = picked[0]; form.submit();
    }
  });

  // heat map cells: the value on hover, the window and feature on click
  document.addEventListener("mouseover", (ev) => {
    const cell = ev.target.closest && ev.target.closest("rect.cell");
    if (!cell || cell.querySelector("title")) return;
    const row = cell.parentNode;
    const t = document.createElementNS("http://www.w3.org/2000/svg", "title");
    t.textContent = `${row.dataset.f}, window ${cell.dataset.w}: ${cell.dataset.v}` +
      ` (threshold ${row.dataset.t})`;
    cell.appendChild(t);
  });
  document.addEventListener("click", (ev) => {
    const cell = ev.target.closest && ev.target.closest("rect.cell");
    if (!cell) return;
    const link = cell.closest("svg").dataset.link;
    window.location.href = link + "window=" + encodeURIComponent(cell.dataset.w) +
      "&feature=" + encodeURIComponent(cell.parentNode.dataset.f);
  });

  // the drift page's selectors apply at once
  document.addEventListener("change", (ev) => {
    if (ev.target.closest("#drift-controls")) ev.target.form.submit();
  });
})();
