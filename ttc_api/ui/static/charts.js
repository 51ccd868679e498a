// Hand-drawn SVG charts: horizontal bars (answer distribution) and a histogram.

import { fmtInt, fmtScore, svg } from "./dom.js";

/** bars: [{label, value, cls, title}] */
export function barChart(bars, { width = 520, rowHeight = 24, labelWidth = 120 } = {}) {
  const max = Math.max(1, ...bars.map((b) => b.value));
  const plot = width - labelWidth - 60;
  const height = bars.length * rowHeight + 8;
  return svg(
    "svg",
    { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart", "aria-label": "Answer distribution" },
    ...bars.map((b, i) => {
      const y = i * rowHeight + 4;
      const w = Math.max(1, (plot * b.value) / max);
      return svg(
        "g",
        { class: `bar ${b.cls || ""}` },
        svg("title", {}, b.title || `${b.label}: ${b.value}`),
        svg("text", { x: labelWidth - 6, y: y + rowHeight / 2 + 4, "text-anchor": "end", class: "axis" }, b.label.length > 16 ? `${b.label.slice(0, 15)}…` : b.label),
        svg("rect", { x: labelWidth, y: y + 2, width: w, height: rowHeight - 6, rx: 2 }),
        svg("text", { x: labelWidth + w + 6, y: y + rowHeight / 2 + 4, class: "axis" }, Number.isInteger(b.value) ? fmtInt(b.value) : b.value.toFixed(2)),
      );
    }),
  );
}

/** bins: [{low, high, nodes, correct}] */
export function histogram(bins, { width = 520, height = 220 } = {}) {
  const max = Math.max(1, ...bins.map((b) => b.nodes));
  const left = 40;
  const bottom = 36;
  const plotW = width - left - 10;
  const plotH = height - bottom - 10;
  const bw = plotW / bins.length;
  const items = [];
  bins.forEach((b, i) => {
    const x = left + i * bw;
    const hAll = (plotH * b.nodes) / max;
    const hRight = (plotH * b.correct) / max;
    items.push(
      svg(
        "g",
        {},
        svg("title", {}, `${fmtScore(b.low)} – ${fmtScore(b.high)}: ${b.nodes} terminals, ${b.correct} correct`),
        svg("rect", { x: x + 1, y: 10 + plotH - hAll, width: Math.max(1, bw - 2), height: hAll, class: "hist-all" }),
        svg("rect", { x: x + 1, y: 10 + plotH - hRight, width: Math.max(1, bw - 2), height: hRight, class: "hist-right" }),
      ),
    );
  });
  const first = bins[0];
  const last = bins[bins.length - 1];
  return svg(
    "svg",
    { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart", "aria-label": "Score histogram of terminal nodes" },
    svg("line", { x1: left, y1: 10 + plotH, x2: left + plotW, y2: 10 + plotH, class: "axis-line" }),
    svg("text", { x: left, y: height - 18, class: "axis" }, fmtScore(first.low)),
    svg("text", { x: left + plotW, y: height - 18, "text-anchor": "end", class: "axis" }, fmtScore(last.high)),
    svg("text", { x: left + plotW / 2, y: height - 4, "text-anchor": "middle", class: "axis" }, "score"),
    svg("text", { x: left - 6, y: 18, "text-anchor": "end", class: "axis" }, fmtInt(max)),
    svg("text", { x: left - 6, y: 10 + plotH, "text-anchor": "end", class: "axis" }, "0"),
    ...items,
  );
}
