// Small DOM and formatting helpers shared by the pages. Text always goes in through
// textContent: node texts are model output and must never be parsed as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const fmtInt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));

export function fmtScore(x) {
  if (x === null || x === undefined) return "–";
  return Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(3);
}

export function fmtCost(x) {
  if (!x) return "$0";
  return x < 0.01 ? `$${x.toFixed(5)}` : `$${x.toFixed(2)}`;
}

export function fmtAge(iso, now = Date.now()) {
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d`;
}

export const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

/** The status a node shows: pending (generated, not scored yet), done, terminal,
 * pruned or failed. */
export function nodeStatus(node) {
  if (node.status === "generated") return "pending";
  if (node.status === "done" && node.is_terminal) return "terminal";
  return node.status;
}

export function badge(status) {
  return h("span", { class: `badge b-${status}` }, status);
}

export const TERMINAL_JOB = new Set(["succeeded", "failed", "cancelled"]);

export function preview(text, max = 140) {
  const line = (text || "").replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

export function throttle(fn, ms) {
  let timer = null;
  let again = false;
  const run = () => {
    timer = setTimeout(() => {
      timer = null;
      if (again) {
        again = false;
        fn();
        run();
      }
    }, ms);
  };
  return () => {
    if (timer) {
      again = true;
      return;
    }
    fn();
    run();
  };
}
