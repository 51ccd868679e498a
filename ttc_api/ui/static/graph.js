// The graph view: boxes and edges for one subtree of at most MAX_NODES nodes (read
// breadth-first from GET /v1/jobs/{id}/nodes?under=...), laid out as a tidy tree: leaves
// side by side, each parent centred over its children. Bigger trees belong in the
// inspector; the graph says how much it left out.

import { base, getJSON, initialData } from "./api.js";
import { fmtInt, fmtScore, h, nodeStatus, preview, svg } from "./dom.js";

const MAX_NODES = 300;
const BOX_W = 112;
const BOX_H = 40;
const GAP_X = 14;
const GAP_Y = 56;

const initial = initialData();
const job = initial.job;
const note = document.getElementById("graph-note");
const target = document.getElementById("graph");

async function bestPathIds() {
  const r = job.result;
  if (!r || !r.node_id) return new Set();
  if (r.details && Array.isArray(r.details.path)) return new Set(r.details.path);
  const detail = await getJSON(`/v1/jobs/${job.id}/nodes/${r.node_id}`);
  return new Set(detail.path.map((n) => n.id));
}

function layout(nodes, topId) {
  const children = new Map();
  for (const n of nodes) {
    if (!children.has(n.parent_id)) children.set(n.parent_id, []);
    children.get(n.parent_id).push(n);
  }
  for (const list of children.values()) list.sort((a, b) => a.child_index - b.child_index);
  const pos = new Map();
  let nextX = 0;
  const place = (node, level) => {
    const kids = children.get(node.id) || [];
    let x;
    if (!kids.length) {
      x = nextX;
      nextX += BOX_W + GAP_X;
    } else {
      const xs = kids.map((k) => place(k, level + 1));
      x = (xs[0] + xs[xs.length - 1]) / 2;
    }
    pos.set(node.id, { x, y: level * (BOX_H + GAP_Y) });
    return x;
  };
  const top = nodes.find((n) => n.id === topId);
  place(top, 0);
  return { pos, width: Math.max(nextX, BOX_W), children };
}

function draw(nodes, topId, best) {
  const { pos, width } = layout(nodes, topId);
  const depth = Math.max(...[...pos.values()].map((p) => p.y)) + BOX_H;
  const edges = [];
  const boxes = [];
  for (const n of nodes) {
    const p = pos.get(n.id);
    const parent = pos.get(n.parent_id);
    const onBest = best.has(n.id);
    if (parent && n.id !== topId) {
      const x1 = parent.x + BOX_W / 2;
      const y1 = parent.y + BOX_H;
      const x2 = p.x + BOX_W / 2;
      const y2 = p.y;
      const my = (y1 + y2) / 2;
      edges.push(svg("path", { d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`, class: onBest && best.has(n.parent_id) ? "edge best" : "edge" }));
    }
    const status = nodeStatus(n);
    const label = n.parent_id === null ? "prompt" : `#${n.child_index} ${n.answer !== null && n.answer !== undefined ? `→ ${n.answer}` : ""}`;
    boxes.push(
      svg(
        "a",
        { href: `${base}/ui/jobs/${job.id}/tree?node=${n.id}`, class: "gnode-link" },
        svg("title", {}, `${status} · score ${fmtScore(n.score)}\n${preview(n.text, 300)}`),
        svg("rect", { x: p.x, y: p.y, width: BOX_W, height: BOX_H, rx: 5, class: `gnode s-${status}${onBest ? " best" : ""}`, "data-node-id": n.id }),
        svg("text", { x: p.x + 8, y: p.y + 16, class: "glabel" }, preview(label, 16)),
        svg("text", { x: p.x + 8, y: p.y + 32, class: "gscore" }, `s ${fmtScore(n.score)}`),
      ),
    );
  }
  const pad = 10;
  const root = svg(
    "svg",
    { width: width + 2 * pad, height: depth + 2 * pad, viewBox: `${-pad} ${-pad} ${width + 2 * pad} ${depth + 2 * pad}`, role: "img", "aria-label": `Graph of ${nodes.length} nodes` },
    svg("g", {}, ...edges),
    svg("g", {}, ...boxes),
  );
  target.replaceChildren(root);
}

(async () => {
  const topId = new URL(location.href).searchParams.get("node") || job.root_node_id;
  try {
    const [page, best] = await Promise.all([
      getJSON(`/v1/jobs/${job.id}/nodes`, { under: topId, limit: MAX_NODES }),
      bestPathIds(),
    ]);
    if (!page.data.length) {
      note.textContent = "No such node.";
      return;
    }
    draw(page.data, topId, best);
    note.replaceChildren(
      `${fmtInt(page.data.length)} nodes`,
      page.next_cursor ? ` (the first ${MAX_NODES} breadth-first; the subtree is bigger: pick a deeper node in the ` : "",
      page.next_cursor ? h("a", { href: `${base}/ui/jobs/${job.id}/tree?node=${topId}` }, "tree") : "",
      page.next_cursor ? ")" : "",
      ". Click a box to open it in the tree.",
    );
  } catch (err) {
    note.textContent = err.message;
  }
})();
