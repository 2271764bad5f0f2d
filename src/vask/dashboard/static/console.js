// Debug console: the app's live events over Server-Sent Events, filters, pause/resume, a render speed limit.
"use strict";
(() => {
  const app = document.body.dataset.app, v = window.vask;
  const log = document.getElementById("console-log"), state = document.getElementById("console-state");
  const counts = document.getElementById("console-counts"), form = document.getElementById("console-filters");
  const MAX_ROWS = 500, RENDER_PER_SECOND = 30; // a busy app must not freeze the browser
  let source = null, paused = false, held = [], shown = 0, skipped = 0, serverDropped = 0, budget = RENDER_PER_SECOND;
  setInterval(() => { budget = RENDER_PER_SECOND; }, 1000);
  const status = (text, cls) => { state.textContent = text; state.className = `badge ${cls}`; };
  const tally = () => { counts.textContent = `${shown} shown` + (held.length ? ` · ${held.length} held while paused` : "") + (skipped + serverDropped ? ` · ${skipped + serverDropped} skipped by the speed limit` : ""); };
  function detailText(ev) {
    const d = Object.assign({}, ev.details || {}); delete d.dropped_total;
    const parts = [];
    if (ev.socket_id) parts.push(`socket ${ev.socket_id}`);
    for (const [k, val] of Object.entries(d)) parts.push(`${k}: ${typeof val === "string" ? val : JSON.stringify(val)}`);
    return parts.join("  ·  ");
  }
  function render(ev) {
    if (budget <= 0) { skipped++; tally(); return; }
    budget--;
    const row = v.el("div", `ev t-${ev.type}`);
    row.appendChild(v.el("span", "time", new Date(ev.at * 1000).toISOString().slice(11, 23)));
    row.appendChild(v.el("span", "type", ev.type));
    row.appendChild(v.el("span", "chan", ev.channel || ""));
    row.appendChild(v.el("span", "det", detailText(ev)));
    row.appendChild(v.el("span", "node", ev.node + (ev.region ? ` / ${ev.region}` : "")));
    log.prepend(row);
    while (log.childElementCount > MAX_ROWS) log.lastElementChild.remove();
    shown++; tally();
  }
  function open() {
    if (source) source.close();
    const q = new URLSearchParams();
    const types = [...form.querySelectorAll('input[name="types"]:checked')].map((x) => x.value);
    if (types.length) q.set("types", types.join(","));
    const channel = form.elements.channel.value.trim(), text = form.elements.q.value.trim();
    if (channel) q.set("channel", channel);
    if (text) q.set("q", text);
    source = new EventSource(`/apps/${encodeURIComponent(app)}/console/stream?${q}`);
    source.onopen = () => status(paused ? "paused" : "live", paused ? "warn" : "ok");
    source.onerror = () => status("reconnecting…", "off");
    source.onmessage = (m) => {
      const ev = JSON.parse(m.data);
      if (ev.dropped_total) serverDropped = ev.dropped_total;
      if (paused) { held.push(ev); if (held.length > MAX_ROWS) held.shift(); tally(); } else render(ev);
    };
  }
  let timer = null;
  form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(open, 400); });
  document.getElementById("pause").addEventListener("click", (b) => {
    paused = !paused; b.target.textContent = paused ? "Resume" : "Pause";
    status(paused ? "paused" : "live", paused ? "warn" : "ok");
    if (!paused) { const h = held; held = []; budget = Math.max(budget, h.length); h.forEach(render); }
    tally();
  });
  document.getElementById("clear").addEventListener("click", () => { log.replaceChildren(); shown = 0; skipped = 0; tally(); });
  const creator = document.getElementById("event-creator"), result = document.getElementById("creator-result");
  creator.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    result.className = ""; result.textContent = "Sending…";
    creator.querySelectorAll(".field-error").forEach((x) => x.remove());
    try {
      const r = await fetch(creator.action, { method: "POST", body: new URLSearchParams(new FormData(creator)), headers: { Accept: "application/json", "X-CSRF-Token": v.csrf() } });
      const data = await r.json();
      if (data.ok) { result.className = "alert alert-ok"; result.textContent = `Sent (HTTP ${data.status}).`; return; }
      result.className = "alert alert-error";
      const errors = data.errors || {};
      result.textContent = errors.form || "Fix the fields marked below.";
      for (const [name, msg] of Object.entries(errors)) {
        const input = creator.elements[name];
        if (input) input.closest("label").appendChild(v.el("span", "field-error", msg));
      }
    } catch (e) { result.className = "alert alert-error"; result.textContent = `Could not send: ${e}`; }
  });
  open();
})();
