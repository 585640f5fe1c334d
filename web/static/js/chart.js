// Outcomes and lag over time as inline SVG: a lag line with status-coloured dots, plus an outcome strip.
import { h, s, fmtMs, fmtUtc, lower } from "./ui.js";

export const STATUS_COLORS = {
  SUCCEEDED: "#17803d", FAILED: "#b42318", MISSED: "#d08700", SKIPPED: "#b98900", CANCELLED: "#8a3b34",
  RUNNING: "#1f6feb", PENDING: "#6f9bff", RETRYING: "#e07a00", AWAITING: "#5b4fc4", BUFFERED: "#94a0b4", TIMED_OUT: "#c4320a",
};

export function outcomeChart(executions) {
  const points = executions.filter((e) => e.scheduledFor).map((e) => ({ ...e, t: new Date(e.scheduledFor).getTime() })).sort((a, b) => a.t - b.t);
  const wrap = h("figure", { class: "chart", style: "margin:0" });
  if (!points.length) {
    wrap.append(h("p", { class: "muted" }, "No executions yet: the chart appears after the first run."));
    return wrap;
  }
  const W = 760, H = 230, L = 66, R = 12, T = 12, B = 52, STRIP = 14;
  const plotH = H - T - B;
  const t0 = points[0].t, t1 = points[points.length - 1].t;
  const span = Math.max(t1 - t0, 1);
  const lags = points.map((p) => p.lagMs).filter((v) => v !== null && v !== undefined);
  const maxLag = niceMax(Math.max(1, ...lags));
  const x = (t) => (points.length === 1 ? L + (W - L - R) / 2 : L + ((t - t0) / span) * (W - L - R));
  const y = (v) => T + plotH - (Math.max(0, v) / maxLag) * plotH;

  const counts = {};
  points.forEach((p) => { counts[p.status] = (counts[p.status] || 0) + 1; });
  const summary = `${points.length} executions from ${fmtUtc(points[0].scheduledFor)} to ${fmtUtc(points[points.length - 1].scheduledFor)}: `
    + Object.entries(counts).map(([k, v]) => `${v} ${lower(k)}`).join(", ") + `; highest lag ${fmtMs(Math.max(0, ...lags))}.`;

  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": summary, id: "outcome-chart" });
  svg.append(s("title", {}, "Outcomes and lag over time"), s("desc", {}, summary));
  // Grid and y axis (lag).
  for (let i = 0; i <= 4; i++) {
    const v = (maxLag / 4) * i;
    svg.append(s("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e5e8ee", "stroke-width": 1 }));
    svg.append(s("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 10, fill: "#5d6778" }, fmtMs(v)));
  }
  svg.append(s("text", { x: 12, y: T + plotH / 2, transform: `rotate(-90 12 ${T + plotH / 2})`, "text-anchor": "middle", "font-size": 10, fill: "#5d6778" }, "lag"));
  // Lag line.
  const withLag = points.filter((p) => p.lagMs !== null && p.lagMs !== undefined);
  if (withLag.length > 1) {
    svg.append(s("polyline", { points: withLag.map((p) => `${x(p.t).toFixed(1)},${y(p.lagMs).toFixed(1)}`).join(" "), fill: "none", stroke: "#7d93c4", "stroke-width": 1.5 }));
  }
  // Dots (runs without a lag sit on the axis) and the outcome strip.
  const stripY = T + plotH + 8;
  const barW = Math.max(2, Math.min(14, (W - L - R) / points.length - 1));
  for (const p of points) {
    const color = STATUS_COLORS[p.status] || "#8a94a6";
    const label = `${fmtUtc(p.scheduledFor)} · ${lower(p.status)} · lag ${fmtMs(p.lagMs)} · duration ${fmtMs(p.durationMs)}`;
    svg.append(s("circle", { cx: x(p.t).toFixed(1), cy: y(p.lagMs ?? 0).toFixed(1), r: 3.5, fill: color }, s("title", {}, label)));
    svg.append(s("rect", { x: (x(p.t) - barW / 2).toFixed(1), y: stripY, width: barW.toFixed(1), height: STRIP, rx: 2, fill: color }, s("title", {}, label)));
  }
  svg.append(s("text", { x: L, y: H - 8, "font-size": 10, fill: "#5d6778" }, fmtUtc(points[0].scheduledFor)));
  if (points.length > 1) svg.append(s("text", { x: W - R, y: H - 8, "font-size": 10, fill: "#5d6778", "text-anchor": "end" }, fmtUtc(points[points.length - 1].scheduledFor)));
  svg.append(s("text", { x: L - 6, y: stripY + 11, "text-anchor": "end", "font-size": 10, fill: "#5d6778" }, "outcome"));

  wrap.append(svg, h("figcaption", { class: "legend" },
    Object.keys(counts).map((k) => h("span", {}, h("span", { class: "swatch", style: `background:${STATUS_COLORS[k] || "#8a94a6"}` }), `${lower(k)} (${counts[k]})`)),
    h("span", {}, "line: fire lag (slot → publish start)")));
  return wrap;
}

function niceMax(v) {
  const exp = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * exp >= v) return m * exp;
  return 10 * exp;
}
