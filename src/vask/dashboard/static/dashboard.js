// Vask dashboard: shared helpers (no library; the pages work without a CDN).
"use strict";
window.vask = {
  csrf() { const m = document.querySelector('meta[name="csrf"]'); return m ? m.content : ""; },
  fmt(n) { return Number(n || 0).toLocaleString("en-US"); },
  el(tag, cls, text) { const x = document.createElement(tag); if (cls) x.className = cls; if (text !== undefined) x.textContent = text; return x; },
  // A chart as inline SVG: one polyline per series, y axis from 0 to the largest value, a few x labels.
  chart(host, points, series, labels) {
    const W = Math.max(320, host.clientWidth || 900), H = 220, L = 56, B = 24, T = 10, R = 10;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("class", "svg-chart");
    let max = 1;
    for (const p of points) for (const s of series) max = Math.max(max, p[s.key] || 0);
    // a round top: counts are whole numbers, so the four grid steps are too
    const mag = Math.pow(10, Math.floor(Math.log10(max / 4)));
    max = 4 * Math.max(1, Math.ceil(max / 4 / Math.max(mag, 1))) * Math.max(mag, 1);
    const x = (i) => L + (points.length < 2 ? 0 : (i * (W - L - R)) / (points.length - 1));
    const y = (v) => H - B - ((v || 0) * (H - B - T)) / max;
    const add = (name, attrs, text) => {
      const n = document.createElementNS(ns, name);
      for (const k in attrs) n.setAttribute(k, attrs[k]);
      if (text !== undefined) n.textContent = text;
      svg.appendChild(n); return n;
    };
    for (let k = 0; k <= 4; k++) {
      const v = (max * k) / 4, yy = y(v);
      add("line", { x1: L, x2: W - R, y1: yy, y2: yy, class: "grid" });
      add("text", { x: L - 6, y: yy + 4, class: "axis", "text-anchor": "end" }, Math.round(v).toLocaleString("en-US"));
    }
    const step = Math.max(1, Math.ceil(points.length / 8));
    points.forEach((p, i) => { if (i % step === 0) add("text", { x: x(i), y: H - 6, class: "axis", "text-anchor": "middle" }, labels(p)); });
    series.forEach((s, n) => {
      const d = points.map((p, i) => `${x(i).toFixed(1)},${y(p[s.key]).toFixed(1)}`).join(" ");
      if (s.area) add("polygon", { points: `${x(0)},${y(0)} ${d} ${x(points.length - 1)},${y(0)}`, class: `area s${n + 1}` });
      add("polyline", { points: d, class: `line s${n + 1}` });
    });
    host.replaceChildren(svg);
  },
};
document.addEventListener("click", (ev) => {
  const code = ev.target.closest && ev.target.closest("code.copy");
  if (code && navigator.clipboard) { navigator.clipboard.writeText(code.textContent); code.classList.add("copied"); setTimeout(() => code.classList.remove("copied"), 900); }
});
