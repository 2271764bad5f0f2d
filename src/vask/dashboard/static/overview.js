// App overview: live counts and the per-minute / per-day charts, refreshed every 2 seconds.
"use strict";
(() => {
  const app = document.body.dataset.app, v = window.vask;
  const hhmm = (p) => new Date(p.at * 1000).toISOString().slice(11, 16);
  const day = (p) => (p.day || "").slice(8);
  async function refresh() {
    let data;
    try {
      const r = await fetch(`/apps/${encodeURIComponent(app)}/stats.json`, { headers: { Accept: "application/json" } });
      if (!r.ok) return;
      data = await r.json();
    } catch (e) { return; }
    document.getElementById("stat-connections").textContent = v.fmt(data.live.connections);
    document.getElementById("stat-peak").textContent = v.fmt(data.peak_connections);
    document.getElementById("stat-channels").textContent = v.fmt(data.live.channels_occupied);
    document.getElementById("stat-month").textContent = v.fmt(data.month_broadcasts);
    document.getElementById("stat-deliveries").textContent = `${v.fmt(data.month_deliveries)} deliveries`;
    const nodes = Object.entries(data.live.by_node || {});
    document.getElementById("stat-nodes").textContent = `${nodes.length} node${nodes.length === 1 ? "" : "s"}`;
    const lines = nodes.map(([n, c]) => `node ${n}: ${v.fmt(c)}`).concat(
      Object.entries(data.live.by_region || {}).map(([r, c]) => `region ${r || "(none)"}: ${v.fmt(c)}`));
    document.getElementById("by-node").textContent = lines.join(" · ") || "no connections";
    v.chart(document.getElementById("chart-hour"), data.minutes,
      [{ key: "deliveries", area: true }, { key: "broadcasts", area: true }, { key: "peak_connections" }], hhmm);
    v.chart(document.getElementById("chart-month"), data.days,
      [{ key: "deliveries", area: true }, { key: "broadcasts", area: true }], day);
  }
  refresh();
  setInterval(refresh, 2000);
})();
